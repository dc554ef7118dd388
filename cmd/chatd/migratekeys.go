package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	chatdredis "github.com/chatd/chatd/redis"
)

// migrateKeys is `chatd migrate-keys`: with the same settings as the
// instances (redis.* above all), it moves the Redis keys of the layout
// before the room-tagged one to their new names (chatdredis.MigrateLayout).
// Every instance must be stopped first.
func migrateKeys(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil || cfg == nil {
		return err
	}
	if !clustered(*cfg) {
		return fmt.Errorf("%w: migrate-keys moves the keys in Redis: set redis.url or redis.addrs as the instances have them", errUsage)
	}
	client, err := chatdredis.NewClient(redisClientConfig(cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer client.Close()
	st, err := chatdredis.MigrateLayout(ctx, client, cfg.Redis.Prefix)
	fmt.Fprintf(stdout, "redis.prefix %q: moved %d memberships, %d room histories and %d clientMsgId records; deleted %d old room member sets\n",
		cfg.Redis.Prefix, st.Memberships, st.Histories, st.Records, st.Dropped)
	if err != nil {
		return errors.Join(fmt.Errorf("redis.prefix %q: the move stopped (run migrate-keys again to finish it)", cfg.Redis.Prefix), err)
	}
	fmt.Fprintf(stdout, "the keys are of layout %d now; chatd can start\n", chatdredis.LayoutVersion)
	return nil
}
