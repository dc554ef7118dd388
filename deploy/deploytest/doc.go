// Package deploytest holds the tests of chatd's deployment files: the Dockerfile and its
// .dockerignore, docker-compose.yml with deploy/nginx/nginx.conf, the kustomize manifests under
// deploy/ (built with krusty and decoded strictly into the Kubernetes API types), and
// deploy/loopback.sh, which runs the compose topology on loopback without Docker.
//
// The package has no code of its own; run it with
//
//	go test ./deploy/...
//
// Tests that need nginx (Debian package nginx) skip with a message naming the package when it
// is absent. Tests that need redis-server follow the policy of every chatd test that does: they
// fail with a message saying to install it, unless CHATD_TEST_SKIP_REDIS=1 makes them skip.
package deploytest
