package deploytest

import (
	"context"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestChatdAcceptsDeploymentConfig gives the real binary's `chatd check-config` exactly the
// environment each deployment gives chatd: every compose instance, and the ConfigMap plus
// Secret (plus CHATD_INSTANCE_ID from the pod name) of both kustomize builds. chatd rejects
// unknown CHATD_* names and bad values, so this is the check that the files start chatd.
func TestChatdAcceptsDeploymentConfig(t *testing.T) {
	chatd := realChatd(t)
	envs := map[string]map[string]string{}

	p := loadCompose(t)
	for _, name := range chatdServices {
		env := map[string]string{}
		for k, v := range service(t, p, name).Environment {
			if v != nil {
				env[k] = *v
			}
		}
		envs["docker-compose.yml "+name] = env
	}
	for _, dir := range kustomizations {
		m := kustomizeBuild(t, dir)
		env := map[string]string{}
		for k, v := range m.configMap(t, "chatd-config").Data {
			env[k] = v
		}
		for k, v := range m.secret(t, "chatd-secrets").Data {
			env[k] = string(v)
		}
		for _, e := range chatdContainer(t, m.deployment(t, "chatd")).Env {
			if e.Value != "" {
				env[e.Name] = e.Value
			} else if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
				env[e.Name] = "chatd-5d8f7c9b4-x2k7q"
			}
		}
		envs["kustomize deploy/"+dir] = env
	}

	for name, env := range envs {
		t.Run(name, func(t *testing.T) {
			var list, names []string
			for k, v := range env {
				list = append(list, k+"="+v)
				names = append(names, k)
			}
			sort.Strings(names)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, chatd, "check-config")
			cmd.Env = cleanEnv(list...)
			out, err := cmd.CombinedOutput()
			if name == "kustomize deploy/base" {
				// The base ships placeholder secrets that must be replaced:
				// chatd refuses to start with them.
				for _, key := range []string{"auth.jwt.secret", "api.token"} {
					if err == nil || !strings.Contains(string(out), key+": is the example placeholder") {
						t.Errorf("check-config accepted the base's placeholder %s: %v\n%s", key, err, out)
					}
				}
				return
			}
			if err != nil {
				t.Errorf("chatd check-config rejects the environment with %v: %v\n%s", names, err, out)
			}
			// The secrets must not be printed.
			for _, k := range []string{"CHATD_AUTH_JWT_SECRET", "CHATD_API_TOKEN"} {
				if v := env[k]; v != "" && strings.Contains(string(out), v) {
					t.Errorf("check-config printed the value of %s", k)
				}
			}
		})
	}
}
