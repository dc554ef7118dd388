// Package deploytest holds the tests of chatd's deployment files: the Dockerfile and its
// .dockerignore, docker-compose.yml with deploy/nginx/nginx.conf, the kustomize manifests under
// deploy/ (built with krusty and decoded strictly into the Kubernetes API types), and
// deploy/loopback.sh, which runs the compose topology on loopback without Docker.
//
// The package has no code of its own; run it with
//
//	go test ./deploy/...
//
// Tests that need nginx or redis-server (Debian packages nginx and redis-server) skip with a
// message naming the package when the binary is absent.
package deploytest
