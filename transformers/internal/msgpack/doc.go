// Package msgpack decodes one msgpack value (a Fluent Bit record)
// straight into a jsontree.Tree: no Go maps, JSON text or copies in
// between, which is most of what a record used to cost. The tree's
// strings point into the record, which the caller never changes, so
// events may keep them. The limits apply as they do to JSON; a duplicate
// member name is an error, because a map that says two things about one
// name cannot be read one way by every reader.
package msgpack
