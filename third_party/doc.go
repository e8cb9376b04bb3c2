// Package thirdparty holds no code. Its test checks that each copy of
// another project under third_party/ is that project's release plus the
// patches written down beside it (patches/*.patch, listed in MOOBI.md), and
// nothing else.
package thirdparty
