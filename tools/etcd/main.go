// Command etcd runs the upstream etcd server for the test control plane.
// etcd's own main module carries replace directives, so `go install` of it fails;
// this wrapper calls the same entry point from the published server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
