// The server API (/api/v1) and the API Gateway compatible @connections
// routes, driven over real HTTP against the chatd binary, with official
// socket.io-client receivers and the official AWS SDK client.
//
// apiSuite(name, start) defines the whole suite over a list of instances:
// API calls go to the first, receivers connect to the last, so that a
// cluster variant (receivers on another instance than the one called) is
// one more apiSuite call with a start function that returns several
// instances sharing a Redis.

import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
  GetConnectionCommand,
  DeleteConnectionCommand,
  GoneException,
  ForbiddenException,
} from "@aws-sdk/client-apigatewaymanagementapi";
import {
  startChatd,
  stopChatd,
  closeAll,
  connect,
  ok,
  nextEvent,
  expectNoEvent,
  waitDisconnect,
  uid,
  byId,
} from "./lib/chatd.mjs";

/** API_ENV is the API part of the environment every instance of a suite gets. */
export const API_ENV = {
  CHATD_API_TOKEN: `e2e-token-${randomBytes(16).toString("hex")}`,
  CHATD_API_AWS_ACCESS_KEY_ID: "AKIDCHATDE2E",
  CHATD_API_AWS_SECRET_ACCESS_KEY: `e2e-secret-${randomBytes(16).toString("hex")}`,
};

const USER_AGENT = "chatd-e2e-agent/1.0";

/**
 * api calls the server API of an instance with the bearer token (or the
 * given Authorization header) and resolves to {status, headers, body}, body
 * parsed when it is JSON.
 */
async function api(srv, method, path, { body, auth = `Bearer ${API_ENV.CHATD_API_TOKEN}` } = {}) {
  const headers = {};
  if (auth) headers.authorization = auth;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(srv.url + path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = text === "" ? undefined : JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** gatewayClient is the AWS SDK's management API client pointed at an instance's stage. */
function gatewayClient(srv, { secretAccessKey = API_ENV.CHATD_API_AWS_SECRET_ACCESS_KEY } = {}) {
  return new ApiGatewayManagementApiClient({
    endpoint: `${srv.url}/prod`,
    region: "us-east-1",
    credentials: { accessKeyId: API_ENV.CHATD_API_AWS_ACCESS_KEY_ID, secretAccessKey },
    maxAttempts: 1,
  });
}

/** rejectsWith asserts that promise rejects with an error of class cls and HTTP status. */
async function rejectsWith(promise, cls, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.name}: ${err?.message}`);
    assert.equal(err.$metadata?.httpStatusCode, status);
    return true;
  });
}

/**
 * apiSuite defines the suite. start() resolves to the list of running
 * instances (each with url), and stop(instances) stops them.
 */
export function apiSuite(name, { start, stop }) {
  describe(`server API: ${name}`, { timeout: 120_000 }, () => {
    let instances;
    let A; // the instance called
    let R; // the instance receivers connect to
    before(async () => {
      instances = await start();
      A = instances[0];
      R = instances.at(-1);
    });
    after(async () => {
      closeAll();
      await stop(instances ?? []);
    });
    afterEach(() => closeAll());

    const receiver = (userId, extra = {}) =>
      connect(R.url, { auth: { userId }, extraHeaders: { "user-agent": USER_AGENT }, ...extra });

    it("POST a room message: members receive it, non-members do not, history has it", async () => {
      const room = uid("room");
      const { socket: member } = await receiver(uid("member"));
      const { socket: outsider } = await receiver(uid("outsider"));
      await ok(member, "join", { room });

      const res = await api(A, "POST", `/api/v1/rooms/${room}/messages`, { body: { text: "deploy at noon", userId: "ops-bot", name: "Ops" } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const { message } = res.body;
      assert.equal(message.room, room);
      assert.equal(message.userId, "ops-bot");
      assert.equal(message.name, "Ops");
      assert.equal(message.text, "deploy at noon");

      assert.deepEqual(await nextEvent(member, "message", { filter: byId(message.id) }), message);
      await expectNoEvent(outsider, "message");

      const hist = await api(A, "GET", `/api/v1/rooms/${room}/messages?limit=10`);
      assert.equal(hist.status, 200);
      assert.deepEqual(hist.body.messages, [message]);

      const sys = await api(A, "POST", `/api/v1/rooms/${room}/messages`, { body: { text: "from the system" } });
      assert.equal(sys.body.message.userId, "system");
      await nextEvent(member, "message", { filter: byId(sys.body.message.id) });
    });

    it("presence lists the online members", async () => {
      const room = uid("room");
      const userId = uid("present");
      const { socket } = await receiver(userId);
      await ok(socket, "join", { room });
      const res = await api(A, "GET", `/api/v1/rooms/${room}/presence`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.users, [{ userId, name: userId }]);
    });

    it("emit reaches rooms, users and sockets, each socket once", async () => {
      const room = uid("room");
      const alice = uid("alice");
      const { socket: a1 } = await receiver(alice);
      const { socket: a2 } = await receiver(alice);
      const { socket: bob } = await receiver(uid("bob"));
      const { socket: carol } = await receiver(uid("carol"));
      await ok(carol, "join", { room });

      const emit = (body) => api(A, "POST", "/api/v1/emit", { body });
      let res = await emit({ event: "notice", data: { n: 1 }, users: [alice] });
      assert.equal(res.status, 202);
      assert.deepEqual(res.body, { ok: true });
      assert.deepEqual(await nextEvent(a1, "notice"), { n: 1 });
      assert.deepEqual(await nextEvent(a2, "notice"), { n: 1 });

      res = await emit({ event: "notice", data: "to bob", sockets: [bob.id] });
      assert.equal(res.status, 202);
      assert.equal(await nextEvent(bob, "notice"), "to bob");

      res = await emit({ event: "notice", data: ["room"], rooms: [room], sockets: [carol.id] });
      assert.equal(res.status, 202);
      assert.deepEqual(await nextEvent(carol, "notice"), ["room"]);
      await expectNoEvent(carol, "notice"); // in the room and named: once
      for (const s of [a1, a2, bob]) await expectNoEvent(s, "notice");

      res = await emit({ event: "message", data: 1, rooms: [room] });
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, "bad_request");
    });

    it("GET a connection, then DELETE it: the client is disconnected", async () => {
      const room = uid("room");
      const userId = uid("conn");
      const before = Date.now();
      const { socket } = await receiver(userId);
      await ok(socket, "join", { room });

      const got = await api(A, "GET", `/api/v1/connections/${socket.id}`);
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.equal(got.body.socketId, socket.id);
      assert.equal(got.body.userId, userId);
      assert.equal(got.body.name, userId);
      assert.deepEqual(got.body.rooms, [room]);
      assert.ok(got.body.connectedAt >= before - 1000 && got.body.connectedAt <= Date.now(), `connectedAt ${got.body.connectedAt}`);

      const id = socket.id; // the client forgets it once disconnected
      const gone = waitDisconnect(socket);
      const del = await api(A, "DELETE", `/api/v1/connections/${id}`);
      assert.equal(del.status, 204);
      // A server-side disconnect: socket.io-client does not reconnect by itself.
      assert.equal(await gone, "io server disconnect");

      const again = await api(A, "GET", `/api/v1/connections/${id}`);
      assert.equal(again.status, 404);
      assert.equal(again.body.error.code, "not_found");
    });

    it("DELETE a user's connections disconnects all of them", async () => {
      const userId = uid("many");
      const { socket: s1 } = await receiver(userId);
      const { socket: s2 } = await receiver(userId);
      const { socket: other } = await receiver(uid("other"));
      const gone = Promise.all([waitDisconnect(s1), waitDisconnect(s2)]);
      const res = await api(A, "DELETE", `/api/v1/users/${encodeURIComponent(userId)}/connections`);
      assert.equal(res.status, 204);
      assert.deepEqual(await gone, ["io server disconnect", "io server disconnect"]);
      assert.ok(other.connected, "another user's socket was disconnected");
    });

    it("refuses with the JSON error body", async () => {
      let res = await api(A, "GET", "/api/v1/rooms/general/presence", { auth: null });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.equal(res.body.error.code, "unauthorized");

      res = await api(A, "POST", "/api/v1/rooms/general/messages", { body: { text: "x", txet: "y" } });
      assert.equal(res.status, 400);
      assert.match(res.body.error.message, /"txet"/);

      res = await api(A, "GET", "/api/v1/rooms/general/messages?limit=ten");
      assert.equal(res.status, 400);
      assert.match(res.body.error.message, /limit/);

      res = await api(A, "GET", "/api/v1/connections/AAAAAAAAAAAAAAAAAAAAAAAA");
      assert.equal(res.status, 404);
      assert.equal(res.body.error.code, "not_found");
    });

    describe("API Gateway compatibility", () => {
      it("PostToConnection, GetConnection and DeleteConnection of the AWS SDK work unchanged", async () => {
        const { socket } = await receiver(uid("aws"));
        const id = socket.id; // the client forgets it once disconnected
        const client = gatewayClient(A);
        try {
          const before = Date.now();
          await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from(JSON.stringify({ kind: "refresh", n: 3 })) }));
          assert.deepEqual(await nextEvent(socket, "push"), { kind: "refresh", n: 3 });
          await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from("plain text") }));
          assert.equal(await nextEvent(socket, "push"), "plain text");

          const conn = await client.send(new GetConnectionCommand({ ConnectionId: id }));
          assert.ok(conn.ConnectedAt instanceof Date);
          assert.ok(conn.ConnectedAt.getTime() <= Date.now() && conn.ConnectedAt.getTime() >= before - 60_000, `ConnectedAt ${conn.ConnectedAt}`);
          assert.ok(conn.LastActiveAt instanceof Date);
          assert.equal(conn.Identity.SourceIp, "127.0.0.1");
          assert.equal(conn.Identity.UserAgent, USER_AGENT);

          const gone = waitDisconnect(socket);
          await client.send(new DeleteConnectionCommand({ ConnectionId: id }));
          assert.equal(await gone, "io server disconnect");

          await rejectsWith(client.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from("x") })), GoneException, 410);
          await rejectsWith(client.send(new GetConnectionCommand({ ConnectionId: id })), GoneException, 410);
          await rejectsWith(client.send(new DeleteConnectionCommand({ ConnectionId: id })), GoneException, 410);
        } finally {
          client.destroy();
        }
      });

      it("an unknown connection id is a GoneException", async () => {
        const client = gatewayClient(A);
        try {
          await rejectsWith(client.send(new PostToConnectionCommand({ ConnectionId: "AAAAAAAAAAAAAAAAAAAAAAAA", Data: Buffer.from("x") })), GoneException, 410);
        } finally {
          client.destroy();
        }
      });

      it("a wrong secret key is a ForbiddenException and reaches nobody", async () => {
        const { socket } = await receiver(uid("aws"));
        const client = gatewayClient(A, { secretAccessKey: "not-the-secret" });
        try {
          await rejectsWith(client.send(new PostToConnectionCommand({ ConnectionId: socket.id, Data: Buffer.from("x") })), ForbiddenException, 403);
          await expectNoEvent(socket, "push");
          assert.ok(socket.connected);
        } finally {
          client.destroy();
        }
      });

      it("the bearer token works on @connections, with and without a stage", async () => {
        const { socket } = await receiver(uid("bearer"));
        for (const prefix of ["/@connections/", "/live/@connections/"]) {
          const res = await api(A, "POST", prefix + socket.id, { body: '{"via":"bearer"}' });
          assert.equal(res.status, 200);
          assert.deepEqual(await nextEvent(socket, "push"), { via: "bearer" });
        }
        const res = await api(A, "GET", `/prod/@connections/${socket.id}`, { auth: "Bearer wrong" });
        assert.equal(res.status, 403);
        assert.equal(res.headers.get("x-amzn-errortype"), "ForbiddenException");
        assert.equal(typeof res.body.message, "string");
      });
    });
  });
}

apiSuite("single instance", {
  start: async () => [await startChatd(API_ENV)],
  stop: async (instances) => {
    for (const srv of instances) await stopChatd(srv);
  },
});
