// Unit tests of the page's state changes: `npm --prefix web test`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as S from './state.js';
import { catchUp } from './recovery.js';

const msg = (id, userId = 'bob', extra = {}) => ({ id, room: 'general', userId, name: userId, text: 'm' + id, ts: 1, ...extra });

function signedIn(rooms = ['general']) {
  const state = S.createState();
  const { kind } = S.startSession(state, { userId: 'alice', name: 'Alice', rooms });
  assert.equal(kind, 'first');
  return state;
}

test('joining adds a room in name order; leaving the open room leaves none open', () => {
  const state = signedIn(['general']);
  S.addRoom(state, 'design');
  S.addRoom(state, 'general'); // already there: unchanged
  assert.deepEqual(state.order, ['design', 'general']);
  assert.equal(S.openRoom(state, 'general').name, 'general');
  assert.equal(state.current, 'general');

  assert.equal(S.dropRoom(state, 'general'), true);
  assert.equal(state.current, null);
  assert.deepEqual(state.order, ['design']);
  assert.equal(S.dropRoom(state, 'general'), false);
  assert.equal(S.openRoom(state, 'nowhere'), null, 'a room the user is not in does not open');
});

test('syncRoomList follows the server and names the room to open when the open one went', () => {
  const state = signedIn(['a', 'b', 'c']);
  S.openRoom(state, 'b');
  assert.deepEqual(S.syncRoomList(state, ['a', 'c', 'd']), { added: ['d'], dropped: ['b'], reopen: 'a' });
  assert.deepEqual(state.order, ['a', 'c', 'd']);
  S.openRoom(state, 'c');
  assert.deepEqual(S.syncRoomList(state, ['c', 'e']), { added: ['e'], dropped: ['a', 'd'] });
  assert.equal(state.current, 'c');
});

test('unread counts grow for live messages from others in rooms that are not open', () => {
  const state = signedIn(['general', 'side']);
  S.openRoom(state, 'side');
  S.receiveMessage(state, msg('1-0'));
  S.receiveMessage(state, msg('2-0'));
  S.receiveMessage(state, msg('3-0', 'alice')); // own, from another tab
  assert.equal(state.rooms.get('general').unread, 2);
  assert.equal(S.totalUnread(state), 2);
  // History pages (not live) never count.
  S.latestPage(state, state.rooms.get('general'), [msg('0-5')], 50, { live: false });
  assert.equal(state.rooms.get('general').unread, 2);
  // The open room does not count.
  S.receiveMessage(state, { ...msg('1-0'), room: 'side' });
  assert.equal(state.rooms.get('side').unread, 0);

  S.openRoom(state, 'general');
  assert.equal(S.totalUnread(state), 0);
  assert.equal(S.markRead(state, 'general'), false, 'already read');
});

test('a message for an unknown room adds it (another tab joined)', () => {
  const state = signedIn([]);
  const { room, newRoom } = S.receiveMessage(state, { ...msg('1-0'), room: 'new' });
  assert.equal(newRoom, true);
  assert.equal(room.unread, 1);
  assert.deepEqual(state.order, ['new']);
});

test('messages are kept once each, in id order; the echo of a pending one replaces it', () => {
  const state = signedIn(['general']);
  const r = state.rooms.get('general');
  S.openRoom(state, 'general');
  const p = S.newPending('c1', 'hi', 5);
  S.addPending(r, p);
  assert.equal(S.sending(p), 1);
  S.receiveMessage(state, msg('10-0'));
  S.receiveMessage(state, msg('9-0'));
  S.receiveMessage(state, msg('10-0')); // a duplicate (recovery replay, catch-up overlap)
  S.receiveMessage(state, msg('11-0', 'alice', { clientMsgId: 'c1' }));
  assert.deepEqual(r.messages.map((m) => m.id), ['9-0', '10-0', '11-0']);
  assert.deepEqual(r.pending, []);
  // The ack after the echo changes nothing.
  S.confirmPending(state, r, p, msg('11-0', 'alice', { clientMsgId: 'c1' }));
  assert.deepEqual(r.messages.map((m) => m.id), ['9-0', '10-0', '11-0']);
});

test('a send that failed waits for the connection when it was lost, or shows why', () => {
  const p = S.newPending('c1', 'hi', 5);
  const first = S.sending(p);
  const second = S.sending(p);
  S.sendFailed(p, first, { lost: false, error: 'late' });
  assert.equal(p.status, 'sending', 'an earlier attempt is ignored');
  S.sendFailed(p, second, { lost: true, error: '' });
  assert.equal(p.status, 'queued');
  S.sendFailed(p, S.sending(p), { lost: false, error: 'Too long.' });
  assert.deepEqual([p.status, p.error], ['failed', 'Too long.']);
});

test('history pages: a full page means older ones may exist', () => {
  const state = signedIn(['general']);
  const r = state.rooms.get('general');
  assert.equal(S.olderFrom(r), null);
  assert.equal(r.hasOlder, false);
  assert.equal(S.latestPage(state, r, [msg('5-0'), msg('6-0')], 2, { live: false }), 2);
  assert.deepEqual([r.loaded, r.hasOlder], [true, true]);
  assert.equal(S.olderFrom(r), '5-0');
  S.olderPage(state, r, [msg('4-0')], 2);
  assert.equal(r.hasOlder, false);
  assert.deepEqual(r.messages.map((m) => m.id), ['4-0', '5-0', '6-0']);
});

test('presence and typing: others come and go; own joins and leaves name rooms to add or drop', () => {
  const state = signedIn(['general']);
  const r = state.rooms.get('general');
  S.setPresence(r, [{ userId: 'alice', name: 'Alice' }, { userId: 'bob' }, null]);
  assert.deepEqual([...r.presence], [['alice', 'Alice'], ['bob', 'bob']]);
  assert.equal(S.setTyping(state, { room: 'general', userId: 'bob', name: 'Bob', typing: true }), r);
  assert.equal(S.setTyping(state, { room: 'general', userId: 'alice', typing: true }), null, 'own typing is ignored');
  S.openRoom(state, 'general');
  assert.deepEqual(S.typingNames(state), ['Bob']);

  assert.deepEqual(S.applyPresence(state, { userId: 'bob', event: 'offline' }), { added: [], left: [] });
  assert.equal(r.presence.has('bob'), false);
  assert.deepEqual(S.typingNames(state), [], 'who goes offline stops typing');
  S.applyPresence(state, { userId: 'carol', name: 'Carol', room: 'general', event: 'joined' });
  assert.equal(r.presence.get('carol'), 'Carol');

  assert.deepEqual(S.applyPresence(state, { userId: 'alice', room: 'design', event: 'joined' }), { added: ['design'], left: [] });
  assert.ok(state.rooms.has('design'));
  assert.deepEqual(S.applyPresence(state, { userId: 'alice', room: 'general', event: 'left' }), { added: [], left: ['general'] });
});

test('a recovered session fetches nothing: the replay brought what was missed', async () => {
  const state = signedIn(['general']);
  const r = state.rooms.get('general');
  S.latestPage(state, r, [msg('1-0')], 50, { live: false });
  const p = S.newPending('c1', 'hi', 5);
  S.addPending(r, p);
  S.sending(p);
  S.setTyping(state, { room: 'general', userId: 'bob', typing: true });

  S.markDisconnected(state);
  assert.equal(r.catchupFrom, '1-0');
  assert.equal(p.status, 'queued', 'a message being sent waits for the next connection');
  assert.equal(r.typing.size, 0);
  assert.deepEqual(S.queuedMessages(state), [[r, p]]);

  const { kind } = S.startSession(state, { userId: 'alice', name: 'Alice', rooms: ['general'], recovered: true });
  assert.equal(kind, 'recovered');
  assert.equal(r.catchupFrom, undefined);
  const asked = [];
  const got = await catchUp(state, async (...a) => asked.push(a), { loadLatest: async () => 0, dropRoom() {} });
  assert.equal(got, 0);
  assert.deepEqual(asked, []);
});

test('a fresh session fetches what every room missed with sync, from the last message seen', async () => {
  const state = signedIn(['general', 'quiet', 'gone', 'flaky']);
  S.openRoom(state, 'quiet');
  for (const name of ['general', 'gone', 'flaky']) S.latestPage(state, state.rooms.get(name), [msg('1-0')], 50, { live: false });
  S.markDisconnected(state);
  S.markDisconnected(state); // a second cut keeps the first starting point
  assert.equal(state.rooms.get('general').catchupFrom, '1-0');
  assert.equal(state.rooms.get('quiet').catchupFrom, null);

  const { kind } = S.startSession(state, { userId: 'alice', rooms: ['general', 'quiet', 'gone', 'flaky'] });
  assert.equal(kind, 'fresh');

  const asked = [];
  const server = {
    general: { '1-0': [msg('1-0'), msg('2-0')], '2-0': [msg('3-0')] }, // an overlap, then the rest
  };
  const request = async (event, payload) => {
    asked.push(`${event} ${JSON.stringify(payload.rooms)} limit=${payload.limit}`);
    const rooms = {};
    for (const [room, after] of Object.entries(payload.rooms)) {
      if (room === 'gone') rooms[room] = { error: { code: 'forbidden', message: 'no' } };
      else if (room === 'flaky') rooms[room] = { error: { code: 'unavailable', message: 'later' } };
      else rooms[room] = { messages: server[room][after], gap: after === '2-0', more: after === '1-0' };
    }
    return { ok: true, rooms };
  };
  const latest = [];
  const dropped = [];
  const got = await catchUp(state, request, {
    page: 2,
    loadLatest: async (r, opts) => (latest.push([r.name, opts.live]), 1),
    dropRoom: (name) => dropped.push(name),
  });
  assert.equal(got, 2 + 1, 'two new messages in general, one from the latest page of the open room');
  assert.deepEqual(asked, [
    'sync {"general":"1-0","gone":"1-0","flaky":"1-0"} limit=2',
    'sync {"general":"2-0"} limit=2',
  ], 'one request for every room, then one for the room that had more');
  const general = state.rooms.get('general');
  assert.deepEqual(general.messages.map((m) => m.id), ['1-0', '2-0', '3-0']);
  assert.equal(general.unread, 2, 'caught-up messages from others count as unread');
  assert.equal(general.gap, true);
  assert.deepEqual(latest, [['quiet', false]], 'an open room that had nothing fetches its latest page');
  assert.deepEqual(dropped, ['gone']);
  assert.equal(state.rooms.get('flaky').catchupFrom, '1-0', 'a failed fetch is tried again next time');
  assert.equal(general.catchupFrom, undefined);
});

test('room names the page refuses before asking the server', () => {
  assert.equal(S.roomNameError('general'), '');
  assert.match(S.roomNameError(''), /1 to 64/);
  assert.match(S.roomNameError('a b'), /1 to 64/);
  assert.match(S.roomNameError('user:bob'), /reserved/);
});

test('nextRoom steps through the sidebar and wraps', () => {
  const state = signedIn(['a', 'b', 'c']);
  S.openRoom(state, 'a');
  assert.equal(S.nextRoom(state, 1), 'b');
  assert.equal(S.nextRoom(state, -1), 'c');
  S.resetSession(state);
  assert.equal(S.nextRoom(state, 1), null);
  assert.equal(state.me, null);
});
