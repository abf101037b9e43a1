//go:build ignore

// The constraint above keeps the go command from treating this file as the
// package's cgo source: it is a separate program, built by BuildHost.

/*
 * host: a stand-in for Fluent Bit that loads a Go output plugin the way
 * Fluent Bit's Go proxy does (src/flb_plugin_proxy.c and src/proxy/go/go.c,
 * Fluent Bit 2.x to 4.x), so that the plugin's tests exercise the real C ABI:
 * dlopen, FLBPluginRegister with a zeroed struct flb_plugin_proxy_def,
 * FLBPluginInit with one plugin struct shared by every instance (as Fluent
 * Bit does: only api, o_ins and context change between instances),
 * FLBPluginFlushCtx (or FLBPluginFlush) from one or several threads, and
 * FLBPluginExitCtx (or FLBPluginExit) per instance. The library is never
 * dlclosed: a Go runtime cannot be unloaded.
 *
 * Usage: host PLUGIN.so
 * Commands are read from stdin, one per line; answers are written to file
 * descriptor 3, one line per command, so that whatever the plugin prints
 * on stdout or stderr cannot be mistaken for an answer.
 *
 *   prop INSTANCE KEY VALUE...   configure a property (VALUE is the rest of
 *                                the line, possibly empty)      -> "ok"
 *   init INSTANCE                FLBPluginInit                  -> "init RC"
 *   flush INSTANCE TAG LEN       then LEN bytes of msgpack      -> "flush RC"
 *   flushmt INSTANCE TAG N LEN1 ... LENN, then the N chunks back to back:
 *                                N threads flush one chunk each at once
 *                                                               -> "flushmt RC1 ... RCN"
 *   exit                         exit callback of every initialised instance
 *                                                               -> "exit NAME=RC ..."
 * At start the host answers "register RC TYPE PROXY NAME".
 * Errors of the protocol itself answer "error MESSAGE".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FLB_PROXY_OUTPUT_PLUGIN 2
#define FLB_PROXY_GOLANG 11

/* Layouts as in Fluent Bit's flb_plugin_proxy.h and proxy/go/go.h. */
struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
};

struct flb_api {
    char *(*output_get_property)(char *, void *);
    char *_; /* input_get_property in Fluent Bit */
};

struct flb_plugin_proxy_context {
    void *remote_context; /* set by FLBPluginSetContext */
    void *proxy;
};

struct flbgo_output_plugin {
    char *name;
    struct flb_api *api;
    void *o_ins;
    struct flb_plugin_proxy_context *context;
};

struct prop {
    char *key;
    char *value;
};

struct instance {
    char *name;
    struct prop *props;
    int nprops;
    int inited;
    struct flb_plugin_proxy_context ctx;
};

static struct instance *instances;
static int ninstances;
static FILE *answers;

static int (*cb_register)(struct flb_plugin_proxy_def *);
static int (*cb_init)(void *);
static int (*cb_flush)(const void *, size_t, char *);
static int (*cb_flush_ctx)(void *, const void *, size_t, char *);
static int (*cb_exit)(void);
static int (*cb_exit_ctx)(void *);

/* Like flb_output_get_property: case-insensitive key, NULL when unset. */
static char *get_property(char *key, void *o_ins)
{
    struct instance *ins = o_ins;
    for (int i = 0; i < ins->nprops; i++) {
        if (strcasecmp(ins->props[i].key, key) == 0) {
            return ins->props[i].value;
        }
    }
    return NULL;
}

static struct flb_api api = {get_property, NULL};
static struct flbgo_output_plugin plugin;

static struct instance *find(const char *name, int create)
{
    for (int i = 0; i < ninstances; i++) {
        if (strcmp(instances[i].name, name) == 0) {
            return &instances[i];
        }
    }
    if (!create) {
        return NULL;
    }
    instances = realloc(instances, sizeof(*instances) * (ninstances + 1));
    struct instance *ins = &instances[ninstances++];
    memset(ins, 0, sizeof(*ins));
    ins->name = strdup(name);
    return ins;
}

static int flush(struct instance *ins, const void *data, size_t size, const char *tag)
{
    /* Fluent Bit hands the plugin a private copy of the tag. */
    char *buf = strdup(tag);
    int ret;
    if (cb_flush_ctx) {
        ret = cb_flush_ctx(ins->ctx.remote_context, data, size, buf);
    }
    else {
        ret = cb_flush(data, size, buf);
    }
    free(buf);
    return ret;
}

static char *read_chunk(size_t len)
{
    char *buf = malloc(len ? len : 1);
    if (len && fread(buf, 1, len, stdin) != len) {
        free(buf);
        return NULL;
    }
    return buf;
}

struct job {
    struct instance *ins;
    const char *tag;
    char *data;
    size_t len;
    int ret;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    j->ret = flush(j->ins, j->data, j->len, j->tag);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
        return 2;
    }
    answers = fdopen(3, "w");
    if (!answers) {
        answers = stdout;
    }
    void *lib = dlopen(argv[1], RTLD_LAZY);
    if (!lib) {
        fprintf(stderr, "host: dlopen: %s\n", dlerror());
        return 1;
    }
    cb_register = dlsym(lib, "FLBPluginRegister");
    cb_init = dlsym(lib, "FLBPluginInit");
    cb_flush = dlsym(lib, "FLBPluginFlush");
    cb_flush_ctx = dlsym(lib, "FLBPluginFlushCtx");
    cb_exit = dlsym(lib, "FLBPluginExit");
    cb_exit_ctx = dlsym(lib, "FLBPluginExitCtx");
    if (!cb_register || !cb_init || (!cb_flush && !cb_flush_ctx)) {
        fprintf(stderr, "host: missing FLBPluginRegister, FLBPluginInit or a flush callback\n");
        return 1;
    }

    struct flb_plugin_proxy_def def;
    memset(&def, 0, sizeof(def));
    int ret = cb_register(&def);
    fprintf(answers, "register %d %d %d %s\n", ret, def.type, def.proxy,
            def.name ? def.name : "-");
    fflush(answers);
    if (def.type != FLB_PROXY_OUTPUT_PLUGIN || def.proxy != FLB_PROXY_GOLANG) {
        fprintf(stderr, "host: not a Go output plugin (type %d proxy %d)\n", def.type, def.proxy);
    }
    plugin.name = def.name;

    static char line[1 << 16];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL;
        char *cmd = strtok_r(line, " ", &save);
        if (!cmd) {
            continue;
        }
        if (strcmp(cmd, "prop") == 0) {
            char *name = strtok_r(NULL, " ", &save);
            char *key = strtok_r(NULL, " ", &save);
            char *value = save ? save : "";
            if (!name || !key) {
                fprintf(answers, "error prop needs INSTANCE KEY\n");
            }
            else {
                struct instance *ins = find(name, 1);
                ins->props = realloc(ins->props, sizeof(struct prop) * (ins->nprops + 1));
                ins->props[ins->nprops].key = strdup(key);
                ins->props[ins->nprops].value = strdup(value);
                ins->nprops++;
                fprintf(answers, "ok\n");
            }
        }
        else if (strcmp(cmd, "init") == 0) {
            char *name = strtok_r(NULL, " ", &save);
            struct instance *ins = name ? find(name, 1) : NULL;
            if (!ins) {
                fprintf(answers, "error init needs INSTANCE\n");
            }
            else {
                /* As proxy_go_output_init: the shared plugin struct points
                 * at this instance for the duration of the call. */
                plugin.api = &api;
                plugin.o_ins = ins;
                plugin.context = &ins->ctx;
                ret = cb_init(&plugin);
                /* Fluent Bit treats ret <= 0 as a failed init (and some
                 * versions then crash on the freed plugin struct); the host
                 * reports it and refuses to flush that instance. */
                ins->inited = ret > 0;
                fprintf(answers, "init %d\n", ret);
            }
        }
        else if (strcmp(cmd, "flush") == 0) {
            char *name = strtok_r(NULL, " ", &save);
            char *tag = strtok_r(NULL, " ", &save);
            char *len = strtok_r(NULL, " ", &save);
            if (!name || !tag || !len) {
                fprintf(answers, "error flush needs INSTANCE TAG LEN\n");
                fflush(answers);
                continue;
            }
            size_t n = strtoull(len, NULL, 10);
            char *data = read_chunk(n);
            struct instance *ins = find(name, 0);
            if (!data) {
                fprintf(answers, "error short chunk\n");
                fflush(answers);
                break;
            }
            if (!ins || !ins->inited) {
                fprintf(answers, "error instance %s not initialised\n", name);
            }
            else {
                fprintf(answers, "flush %d\n", flush(ins, data, n, tag));
            }
            free(data);
        }
        else if (strcmp(cmd, "flushmt") == 0) {
            char *name = strtok_r(NULL, " ", &save);
            char *tag = strtok_r(NULL, " ", &save);
            char *count = strtok_r(NULL, " ", &save);
            if (!name || !tag || !count) {
                fprintf(answers, "error flushmt needs INSTANCE TAG N LEN...\n");
                fflush(answers);
                continue;
            }
            int n = atoi(count);
            struct job *jobs = calloc(n > 0 ? n : 1, sizeof(struct job));
            struct instance *ins = find(name, 0);
            int ok = 1;
            for (int i = 0; i < n; i++) {
                char *l = strtok_r(NULL, " ", &save);
                if (!l) {
                    ok = 0;
                    break;
                }
                jobs[i].len = strtoull(l, NULL, 10);
            }
            for (int i = 0; ok && i < n; i++) {
                jobs[i].ins = ins;
                jobs[i].tag = tag;
                jobs[i].data = read_chunk(jobs[i].len);
                if (!jobs[i].data) {
                    ok = 0;
                }
            }
            if (!ok) {
                fprintf(answers, "error flushmt: missing lengths or short chunk\n");
                fflush(answers);
                break;
            }
            if (!ins || !ins->inited) {
                fprintf(answers, "error instance %s not initialised\n", name);
            }
            else {
                /* Like Fluent Bit's output workers: plain pthreads the Go
                 * runtime has never seen, calling flush at the same time. */
                pthread_t *th = calloc(n, sizeof(pthread_t));
                for (int i = 0; i < n; i++) {
                    pthread_create(&th[i], NULL, run_job, &jobs[i]);
                }
                for (int i = 0; i < n; i++) {
                    pthread_join(th[i], NULL);
                }
                free(th);
                fprintf(answers, "flushmt");
                for (int i = 0; i < n; i++) {
                    fprintf(answers, " %d", jobs[i].ret);
                }
                fprintf(answers, "\n");
            }
            for (int i = 0; i < n; i++) {
                free(jobs[i].data);
            }
            free(jobs);
        }
        else if (strcmp(cmd, "exit") == 0) {
            fprintf(answers, "exit");
            for (int i = 0; i < ninstances; i++) {
                if (!instances[i].inited) {
                    continue;
                }
                if (cb_exit_ctx) {
                    ret = cb_exit_ctx(instances[i].ctx.remote_context);
                }
                else if (cb_exit) {
                    ret = cb_exit();
                }
                else {
                    ret = 1;
                }
                fprintf(answers, " %s=%d", instances[i].name, ret);
            }
            fprintf(answers, "\n");
            fflush(answers);
            return 0;
        }
        else {
            fprintf(answers, "error unknown command %s\n", cmd);
        }
        fflush(answers);
    }
    return 0;
}
