// Package reconcile plans the full reconcile of one Git target: the change
// that makes the target's files equal what its rules select.
//
// It receives the target's rules, a Lister of the cluster's objects, a
// Render function (the same policy, sanitizer and layout stages a live
// change passes through) and the branch's files under the target's base
// path (paths and blob hashes, plus a reader for the few files it must
// open), and hands on a Plan: the files to add, update and remove, with
// counts, and the objects and files it left alone for now.
//
// An unchanged file costs no read: the expected content's blob hash is
// compared with the tree's. A file is managed, and so removed when no
// selected object renders to it, when it lies under the base path and its
// YAML names (apiVersion, kind, metadata.namespace) a kind that a rule of
// the target selects, in that rule's scope. Anything else (a README, a
// human's notes, kinds no rule selects) is left alone. Only files whose
// path is not expected are opened to tell, and their identity is cached by
// blob hash across plans.
//
// With a PageLister the plan takes a listing page by page: each page is
// rendered and hashed for every rule that reads it and dropped, so only
// paths, hashes and the content of differing files stay. The pages of one
// listing are one snapshot; when it cannot be finished (ErrListExpired) the
// listing is dropped and listed again from its first page.
package reconcile
