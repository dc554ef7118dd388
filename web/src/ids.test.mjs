// Unit tests of message id ordering and merging: `npm --prefix web test`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareIds, mergeMessages } from './ids.js';

test('compareIds orders "<ms>-<seq>" ids by their numbers, not as strings', () => {
  const cases = [
    ['9-0', '10-0', -1],
    ['1700000000000-2', '1700000000000-10', -1],
    ['1700000000001-0', '1700000000000-99', 1],
    ['5-5', '5-5', 0],
    ['18446744073709551615-1', '18446744073709551615-0', 1], // beyond 2^53
  ];
  for (const [a, b, want] of cases) {
    assert.equal(Math.sign(compareIds(a, b)), want, `${a} vs ${b}`);
    assert.equal(Math.sign(compareIds(b, a)), want === 0 ? 0 : -want, `${b} vs ${a}`);
  }
});

test('compareIds falls back to string order for other id shapes', () => {
  assert.ok(compareIds('a', 'b') < 0);
  assert.ok(compareIds('b', 'a') > 0);
});

test('mergeMessages keeps one copy of each id, in id order', () => {
  const list = [];
  const seen = new Set();
  const m = (id) => ({ id, text: id });
  assert.deepEqual(mergeMessages(list, seen, [m('3-0'), m('4-0')]).map((x) => x.id), ['3-0', '4-0']);
  // A page of older messages, overlapping with what we have.
  assert.deepEqual(mergeMessages(list, seen, [m('1-0'), m('2-0'), m('3-0')]).map((x) => x.id), ['1-0', '2-0']);
  // A catch-up page, newest last, with a duplicate and a bad entry.
  assert.deepEqual(mergeMessages(list, seen, [m('4-0'), m('10-0'), m('5-0'), null, { text: 'no id' }]).map((x) => x.id), ['5-0', '10-0']);
  assert.deepEqual(list.map((x) => x.id), ['1-0', '2-0', '3-0', '4-0', '5-0', '10-0']);
  assert.deepEqual(mergeMessages(list, seen, [m('2-0')]), []);
});
