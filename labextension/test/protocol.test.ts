// Unit checks of the comm client and the formatting helpers, in plain node (no browser).
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import {
  codeSummary,
  formatBytes,
  formatDuration,
  formatStoreSize,
  layoutTree,
  summarizeCheckout
} from '../src/format';
import { ICommit, ProtocolError, TimeTravelClient } from '../src/protocol';

/** A fake comm: records what is sent, lets the test play the kernel. */
class FakeComm {
  sent: any[] = [];
  closed = false;
  onMsg: (msg: any) => void = () => undefined;
  onClose: (msg: any) => void = () => undefined;
  send(data: any): void {
    this.sent.push(data);
  }
  close(): void {
    this.closed = true;
  }
  reply(data: any): void {
    this.onMsg({ content: { data } });
  }
}

function commit(id: string, parent: string | null, extra: Partial<ICommit> = {}): ICommit {
  return {
    id,
    parent,
    execution_count: null,
    cell_id: null,
    code: `x = '${id}'`,
    time: 1_700_000_000,
    duration: 0.01,
    status: 'ok',
    changed: ['x'],
    bytes_written: 10,
    cells: 1,
    ...extra
  };
}

test('a request carries a fresh id and op, and resolves with its result', async () => {
  const comm = new FakeComm();
  const client = new TimeTravelClient(comm);
  const pending = client.request('diff', { a: 'aa', b: 'bb' });
  assert.equal(comm.sent.length, 1);
  const sent = comm.sent[0];
  assert.equal(sent.op, 'diff');
  assert.equal(sent.a, 'aa');
  assert.equal(typeof sent.id, 'string');
  comm.reply({ id: 'someone-else', ok: true, result: { added: ['nope'] } });
  comm.reply({ id: sent.id, ok: true, result: { added: ['y'], deleted: [], changed: [] } });
  assert.deepEqual((await pending).added, ['y']);
});

test('replies are matched by id when several are in flight', async () => {
  const comm = new FakeComm();
  const client = new TimeTravelClient(comm);
  const first = client.request('log', { limit: 5 });
  const second = client.request('vars');
  assert.notEqual(comm.sent[0].id, comm.sent[1].id);
  comm.reply({ id: comm.sent[1].id, ok: true, result: { vars: [] } });
  comm.reply({ id: comm.sent[0].id, ok: true, result: { commits: [] } });
  assert.deepEqual(await first, { commits: [] });
  assert.deepEqual(await second, { vars: [] });
});

test('an error reply rejects with the protocol error code', async () => {
  const comm = new FakeComm();
  const client = new TimeTravelClient(comm);
  const pending = client.request('undo');
  comm.reply({ id: comm.sent[0].id, ok: false, error: { code: 'nothing-to-undo', message: 'At the root.' } });
  await assert.rejects(pending, (err: unknown) => err instanceof ProtocolError && err.code === 'nothing-to-undo');
});

test('events go to onEvent, not to pending requests', async () => {
  const comm = new FakeComm();
  const client = new TimeTravelClient(comm);
  const events: any[] = [];
  client.onEvent = event => events.push(event);
  const pending = client.request('status');
  comm.reply({ event: 'checkpoint', commit: commit('c1', null) });
  comm.reply('not an object');
  assert.equal(events.length, 1);
  comm.reply({ id: comm.sent[0].id, ok: true, result: { protocol: 1 } });
  assert.equal((await pending).protocol, 1);
});

test('a closing comm rejects what is pending and refuses new requests', async () => {
  const comm = new FakeComm();
  const client = new TimeTravelClient(comm);
  let reason = '';
  client.onClosed = r => (reason = r);
  const pending = client.request('status');
  comm.onClose({ content: { data: {} } });
  await assert.rejects(pending, (err: unknown) => err instanceof ProtocolError && err.code === 'comm-closed');
  await assert.rejects(client.request('status'), /closed/);
  assert.equal(reason, 'closed');
  assert.equal(client.isOpen, false);
});

test('a request times out with code "timeout"', async () => {
  const comm = new FakeComm();
  const client = new TimeTravelClient(comm, { timeouts: { status: 20 } });
  await assert.rejects(client.request('status'), (err: unknown) => err instanceof ProtocolError && err.code === 'timeout');
});

test('sizes and durations read like a person writes them', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(50 * 1024 * 1024), '50 MB');
  assert.equal(formatStoreSize({ bytes: 1536 }), '1.5 KB');
  assert.equal(formatStoreSize({ bytes: 1536, budget: null }), '1.5 KB');
  assert.equal(formatStoreSize({ bytes: 1536, budget: 2 * 1024 ** 3 }), '1.5 KB of 2.0 GB');
  assert.equal(formatStoreSize({ bytes: 4096, budget: 2048 }), '4.0 KB of 2.0 KB (over budget: thinning)');
  assert.equal(formatDuration(0.0123), '12 ms');
  assert.equal(formatDuration(3.21), '3.2 s');
  assert.equal(formatDuration(125), '2 min 5 s');
});

test('codeSummary keeps the first non-blank line and marks more', () => {
  assert.equal(codeSummary('\n\nx = 1\ny = 2'), 'x = 1 …');
  assert.equal(codeSummary('x = 1'), 'x = 1');
  assert.equal(codeSummary(''), '(empty cell)');
  assert.equal(codeSummary('a'.repeat(100), 10), 'aaaaaaaaa…');
});

test('layoutTree puts a branch in its own lane and marks the head path', () => {
  // root <- a <- b, and a <- c (c newest, a branch made after undoing b)
  const commits = [
    commit('c', 'a', { time: 4 }),
    commit('b', 'a', { time: 3 }),
    commit('a', 'root', { time: 2 }),
    commit('root', null, { time: 1 })
  ];
  const rows = layoutTree(commits, 'b');
  const lane = Object.fromEntries(rows.map(r => [r.commit.id, r.lane]));
  assert.equal(lane.c, 0);
  assert.equal(lane.b, 1);
  assert.equal(lane.a, 0);
  assert.equal(lane.root, 0);
  const onHead = Object.fromEntries(rows.map(r => [r.commit.id, r.onHeadPath]));
  assert.deepEqual(onHead, { c: false, b: true, a: true, root: true });
  // b sits in lane 1 while lane 0 passes by on its way from c to a.
  assert.deepEqual(rows[1].through, [0]);
  // a is where b's lane joins c's.
  assert.deepEqual(rows[2].joined, [1]);
  assert.equal(rows[2].hasChild, true);
  assert.equal(rows[3].hasParent, false);
});

test('summarizeCheckout says what came back and what could not', () => {
  const text = summarizeCheckout({
    head: commit('h', 'p', { execution_count: 3, code: 'y = f(x)' }),
    loaded: ['x'],
    deleted: ['y'],
    kept: ['z'],
    seconds: 0.004,
    unrestored: { sock: 'cannot pickle socket' },
    reconnected: []
  });
  assert.match(text, /Now at \[3\] y = f\(x\)/);
  assert.match(text, /loaded x/);
  assert.match(text, /removed y/);
  assert.match(text, /could not restore sock/);
});
