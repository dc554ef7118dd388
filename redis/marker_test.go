package redis

import "testing"

func TestDataMarkerNoticesALoss(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	m, err := NewDataMarker(client, storeNewPrefix(), "i1")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if lost, err := m.Check(ctx); lost || err != nil {
		t.Fatalf("check after start: lost=%v %v", lost, err)
	}
	if err := client.Del(ctx, m.Key()).Err(); err != nil { // what a restart without data does
		t.Fatal(err)
	}
	if lost, err := m.Check(ctx); !lost || err != nil {
		t.Fatalf("check after the loss: lost=%v %v, want lost", lost, err)
	}
	if lost, _ := m.Check(ctx); lost {
		t.Fatal("one loss reported twice")
	}
	ttl, _ := client.PTTL(ctx, m.Key()).Result()
	if ttl <= 0 || ttl > MarkerTTL {
		t.Fatalf("marker TTL %v", ttl)
	}
}
