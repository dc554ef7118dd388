// Message ids are "<milliseconds>-<sequence>" (both decimal), and sort in the
// order the server stored the messages. Ids of another shape compare as
// strings, which the protocol also allows.
const ID = /^(\d{1,20})-(\d{1,20})$/;

/** compareIds orders two message ids: negative, zero or positive. */
export function compareIds(a, b) {
  if (a === b) return 0;
  const ma = ID.exec(a);
  const mb = ID.exec(b);
  if (ma && mb) {
    const msA = BigInt(ma[1]);
    const msB = BigInt(mb[1]);
    if (msA !== msB) return msA < msB ? -1 : 1;
    const sA = BigInt(ma[2]);
    const sB = BigInt(mb[2]);
    if (sA !== sB) return sA < sB ? -1 : 1;
    return 0;
  }
  return a < b ? -1 : 1;
}

/**
 * mergeMessages adds the messages of `incoming` that `list` does not have yet
 * (by id) and keeps `list` sorted by id. `seen` is the Set of ids in `list`.
 * It returns the messages that were added, oldest first.
 */
export function mergeMessages(list, seen, incoming) {
  const added = [];
  for (const m of incoming) {
    if (!m || typeof m.id !== 'string' || seen.has(m.id)) continue;
    seen.add(m.id);
    added.push(m);
  }
  if (added.length === 0) return added;
  added.sort((x, y) => compareIds(x.id, y.id));
  const last = list.length ? list[list.length - 1].id : null;
  list.push(...added);
  if (last !== null && compareIds(added[0].id, last) < 0) {
    list.sort((x, y) => compareIds(x.id, y.id));
  }
  return added;
}
