// Package repotest holds tests about the repository itself rather than
// about one package: checks that keep its files true to each other.
//
// TestStandsAlone keeps the repository self-contained: no file may send
// a reader to documents that are not shipped with it (an external
// requirements file or numbered issues of a tracker). The listener model
// users need is docs/model.md, and code cites its sections.
package repotest
