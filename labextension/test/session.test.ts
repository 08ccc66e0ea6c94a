// Unit checks of TimeTravelSession against a fake kernel: which kernels get the comm, the
// handshake, live events, restarts, and notices told once.
import { strict as assert } from 'node:assert';
import { afterEach, test } from 'node:test';

import { Signal } from '@lumino/signaling';

import { Notice, TimeTravelSession } from '../src/session';

class FakeComm {
  opened: any = null;
  sent: any[] = [];
  onMsg: (msg: any) => void = () => undefined;
  onClose: (msg: any) => void = () => undefined;
  open(data: any): void {
    this.opened = data;
  }
  send(data: any): void {
    this.sent.push(data);
  }
  close(): void {
    /* closed by the client */
  }
  /** Answer the oldest unanswered request with `result`. */
  reply(op: string, result: any): void {
    const request = this.sent.find(r => r.op === op && !r.answered);
    assert.ok(request, `no pending ${op} request; sent: ${JSON.stringify(this.sent)}`);
    request.answered = true;
    this.onMsg({ content: { data: { id: request.id, ok: true, result } } });
  }
  event(data: any): void {
    this.onMsg({ content: { data } });
  }
}

class FakeKernel {
  constructor(
    public name: string,
    private displayName = name
  ) {}
  id = 'kernel-1';
  status = 'idle';
  connectionStatus = 'connected';
  isDisposed = false;
  comms: FakeComm[] = [];
  infoRequests = 0;
  statusChanged = new Signal<any, string>(this);
  connectionStatusChanged = new Signal<any, string>(this);
  get spec(): Promise<any> {
    return Promise.resolve({ display_name: this.displayName });
  }
  createComm(): FakeComm {
    const comm = new FakeComm();
    this.comms.push(comm);
    return comm;
  }
  registerCommTarget(): void {
    /* events arrive on our own comm in these tests */
  }
  removeCommTarget(): void {
    /* nothing registered */
  }
  requestKernelInfo(): Promise<any> {
    this.infoRequests++;
    return Promise.resolve({ content: {} });
  }
  setStatus(status: string): void {
    this.status = status;
    this.statusChanged.emit(status);
  }
}

function fakeContext(kernel: FakeKernel): any {
  return {
    session: { kernel },
    kernelChanged: new Signal<any, any>({}),
    kernelDisplayName: kernel.name === 'python3' ? 'Python 3 (ipykernel)' : 'Python 3 (time-travel)'
  };
}

function commit(id: string, parent: string | null, count: number | null): any {
  return {
    id,
    parent,
    execution_count: count,
    cell_id: null,
    code: `x = ${count}`,
    time: 1_700_000_000 + (count ?? 0),
    duration: 0.001,
    status: 'ok',
    changed: ['x'],
    bytes_written: 10,
    cells: 1
  };
}

const ROOT = commit('r000', null, null);
const C1 = commit('c111', 'r000', 1);
const OPTIONS = { kernelNames: ['timetravel'], historyLimit: 50 };

function status(head: any, restorable: any = null): any {
  return { protocol: 1, head, commits: 2, store: { path: '/s', bytes: 1000 }, restorable };
}

const tick = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 0));

/** Sessions made by a test, disposed after it so no timer outlives it. */
const sessions: TimeTravelSession[] = [];
afterEach(() => {
  sessions.splice(0).forEach(session => session.dispose());
});

function makeSession(kernel: FakeKernel): TimeTravelSession {
  const session = new TimeTravelSession(fakeContext(kernel), OPTIONS);
  sessions.push(session);
  return session;
}

/** Open a session on a time-travel kernel and answer its handshake. */
async function readySession(kernel = new FakeKernel('timetravel')): Promise<{
  session: TimeTravelSession;
  kernel: FakeKernel;
  comm: FakeComm;
  notices: Notice[];
}> {
  const session = makeSession(kernel);
  const notices: Notice[] = [];
  session.notice.connect((_, notice) => notices.push(notice));
  const comm = kernel.comms[kernel.comms.length - 1];
  comm.reply('status', status(C1));
  await tick();
  comm.reply('status', status(C1));
  comm.reply('log', { commits: [C1, ROOT] });
  await tick();
  return { session, kernel, comm, notices };
}

test('another kernel gets a hint and no comm', async () => {
  const kernel = new FakeKernel('python3', 'Python 3 (ipykernel)');
  const session = makeSession(kernel);
  await tick();
  assert.equal(session.state, 'unsupported');
  assert.match(session.hint, /Python 3 \(ipykernel\).*Python 3 \(time-travel\)/);
  assert.equal(kernel.comms.length, 0);
  assert.equal(session.isReady, false);
});

test('a time-travel kernelspec under another name is recognised by its display name', async () => {
  const kernel = new FakeKernel('tt-custom', 'Python 3 (time-travel)');
  const session = makeSession(kernel);
  await tick();
  assert.equal(kernel.comms.length, 1);
  assert.equal(session.state, 'connecting');
});

test('the handshake opens the comm, asks status and log, and gets ready', async () => {
  const { session, comm } = await readySession();
  assert.deepEqual(comm.opened, {});
  assert.equal(session.state, 'ready');
  assert.equal(session.head?.id, 'c111');
  assert.deepEqual(
    session.commits.map(c => c.id),
    ['c111', 'r000']
  );
  assert.equal(session.lastCheckpoint?.id, 'c111');
});

test('a kernel that closes the comm is not the time-travel one', async () => {
  const kernel = new FakeKernel('timetravel');
  const session = makeSession(kernel);
  kernel.comms[0].onClose({ content: { data: {} } });
  await tick();
  assert.equal(session.state, 'unsupported');
  assert.match(session.hint, /did not accept/);
});

test('a checkpoint event moves HEAD and adds the commit at once', async () => {
  const { session, comm } = await readySession();
  const c2 = commit('c222', 'c111', 2);
  comm.event({ event: 'checkpoint', commit: c2, unsaved: {}, seconds: 0.001 });
  assert.equal(session.head?.id, 'c222');
  assert.equal(session.commits[0].id, 'c222');
});

test('saving is counted from events until the last state is durable', async () => {
  const { session, comm } = await readySession();
  assert.equal(session.saving, 0);
  comm.event({ event: 'saving', saving: 1, execution_count: 2 });
  comm.event({ event: 'saving', saving: 2, execution_count: 3 });
  assert.equal(session.saving, 2);
  comm.event({ event: 'checkpoint', commit: commit('c222', 'c111', 2), unsaved: {}, seconds: 0.01, saving: 1 });
  assert.equal(session.saving, 1);
  comm.event({ event: 'checkpoint', commit: commit('c333', 'c222', 3), unsaved: {}, seconds: 0.01, saving: 0 });
  assert.equal(session.saving, 0);
  assert.equal(session.head?.id, 'c333');
});

test('the handshake and refreshes never wait for states being saved', async () => {
  const { comm } = await readySession();
  const asked = comm.sent.filter(r => r.op === 'status' || r.op === 'log');
  assert.ok(asked.length >= 2);
  assert.ok(asked.every(r => r.wait === false), JSON.stringify(asked));
});

test('undo sends the op and reports the new head', async () => {
  const { session, comm } = await readySession();
  const pending = session.undo();
  assert.equal(session.pendingOp, 'undo');
  comm.reply('undo', { head: ROOT, loaded: [], deleted: ['x'], kept: [], seconds: 0.001, unrestored: {} });
  const result = await pending;
  assert.equal(result.head.id, 'r000');
  assert.equal(session.head?.id, 'r000');
  assert.equal(session.pendingOp, null);
});

test('after a restart the comm reopens once the new kernel answers, and the offer is told once', async () => {
  const { session, kernel, notices } = await readySession();
  kernel.setStatus('restarting');
  assert.equal(session.state, 'restarting');
  kernel.setStatus('idle');
  await tick();
  await tick();
  assert.equal(kernel.infoRequests, 1);
  assert.equal(kernel.comms.length, 2);
  const comm = kernel.comms[1];
  comm.event({ event: 'restore-available', restorable: C1, crashed: false, message: 'offer' });
  comm.reply('status', status(ROOT, C1));
  await tick();
  comm.reply('status', status(ROOT, C1));
  comm.reply('log', { commits: [C1, ROOT] });
  await tick();
  assert.equal(session.state, 'ready');
  const offers = notices.filter(n => n.kind === 'restore-available');
  assert.equal(offers.length, 1);
});

test('a crash restore is told from the kernel event, with what could not come back', async () => {
  const { kernel, notices } = await readySession();
  kernel.setStatus('restarting');
  kernel.setStatus('autorestarting');
  kernel.setStatus('idle');
  await tick();
  await tick();
  const comm = kernel.comms[1];
  comm.event({ event: 'restored', head: C1, crashed: true, unrestored: { gen: 'generator' }, message: 'm' });
  const restored = notices.filter(n => n.kind === 'restored');
  assert.equal(restored.length, 1);
  const notice = restored[0] as Extract<Notice, { kind: 'restored' }>;
  assert.equal(notice.crashed, true);
  assert.equal(notice.head?.id, 'c111');
  assert.deepEqual(Object.keys(notice.unrestored), ['gen']);
});

test('unsaved names are warned about once each', async () => {
  const { comm, notices } = await readySession();
  comm.event({ event: 'warning', message: 'not saved', names: { gen: 'generator' } });
  comm.event({ event: 'warning', message: 'not saved', names: { gen: 'generator' } });
  comm.event({ event: 'warning', message: 'not saved', names: { gen: 'generator', sock: 'socket' } });
  const warnings = notices.filter(n => n.kind === 'warning') as Extract<Notice, { kind: 'warning' }>[];
  assert.equal(warnings.length, 2);
  assert.match(warnings[0].message, /gen \(generator\)/);
  assert.match(warnings[1].message, /^Not saved.*sock \(socket\)\.$/);
  assert.doesNotMatch(warnings[1].message, /gen/);
});

test('on a page load, a stale `restorable` in status alone offers nothing', async () => {
  const kernel = new FakeKernel('timetravel');
  const session = makeSession(kernel);
  const notices: Notice[] = [];
  session.notice.connect((_, notice) => notices.push(notice));
  const comm = kernel.comms[0];
  comm.reply('status', status(ROOT, C1));
  await tick();
  comm.reply('status', status(ROOT, C1));
  comm.reply('log', { commits: [C1, ROOT] });
  await tick();
  assert.equal(session.state, 'ready');
  assert.deepEqual(notices, []);
});

test('a kernel whose time travel is off says why, and nothing is enabled', async () => {
  const kernel = new FakeKernel('timetravel');
  const session = makeSession(kernel);
  kernel.comms[0].reply('status', {
    ...status(null),
    enabled: false,
    notice: 'time travel is off: it could not start (OSError: disk full)'
  });
  await tick();
  assert.equal(session.state, 'failed');
  assert.equal(session.isReady, false);
  assert.match(session.hint, /disk full/);
});

test('a replayed restore notice is told once per tab, but always after a crash seen here', async () => {
  const store = new Map<string, string>();
  (globalThis as any).sessionStorage = {
    getItem: (key: string) => store.get(key) ?? null,
    setItem: (key: string, value: string) => void store.set(key, value)
  };
  try {
    const restored = { event: 'restored', head: C1, crashed: true, unrestored: {}, message: 'm' };
    const first = await readySession();
    first.comm.event(restored);
    assert.equal(first.notices.length, 1);
    // A page reload: a new session on the same kernel gets the replay and says nothing.
    const reload = await readySession(first.kernel);
    reload.kernel.comms[reload.kernel.comms.length - 1].event(restored);
    assert.equal(reload.notices.length, 0);
    // The kernel crashes again while this page watches: told again.
    reload.kernel.setStatus('restarting');
    reload.kernel.setStatus('autorestarting');
    reload.kernel.setStatus('idle');
    await tick();
    await tick();
    reload.kernel.comms[reload.kernel.comms.length - 1].event(restored);
    assert.equal(reload.notices.filter(n => n.kind === 'restored').length, 1);
  } finally {
    delete (globalThis as any).sessionStorage;
  }
});

test('a rebuild offer becomes a notice with the plan, and rebuild sends the names', async () => {
  const { session, kernel, notices } = await readySession();
  const comm = kernel.comms[0];
  const plan = {
    at: C1,
    names: ['gen'],
    steps: [{ kind: 'run', names: ['gen'], commit: 'c111', execution_count: 1, code: 'gen = iter([])', seconds: 0.5 }],
    seconds: 0.5,
    impossible: {}
  };
  comm.event({ event: 'rebuild-available', plan, message: 'm' });
  const offers = notices.filter(n => n.kind === 'rebuild-available');
  assert.equal(offers.length, 1);
  assert.deepEqual((offers[0] as Extract<Notice, { kind: 'rebuild-available' }>).plan.names, ['gen']);
  const done = session.rebuild(['gen']);
  await tick();
  const request = comm.sent.find(r => r.op === 'rebuild');
  assert.deepEqual(request?.names, ['gen']);
  comm.reply('rebuild', { rebuilt: ['gen'], failed: {}, cells_run: 1, seconds: 0.1 });
  assert.deepEqual((await done).rebuilt, ['gen']);
});

test('restoring one variable sends get with its options, and moves HEAD to the new state', async () => {
  const { session, comm } = await readySession();
  const restored = commit('g333', 'c111', null);
  const pending = session.restoreVariable('df', 'c111', { asName: 'df_old' });
  assert.equal(session.pendingOp, 'get');
  const request = comm.sent.find(r => r.op === 'get');
  assert.deepEqual(
    { name: request.name, commit: request.commit, as: request.as, together: request.together },
    { name: 'df', commit: 'c111', as: 'df_old', together: undefined }
  );
  comm.reply('get', { head: restored, loaded: ['df_old'], deleted: [], kept: [], seconds: 0.01, unrestored: {} });
  assert.deepEqual((await pending).loaded, ['df_old']);
  assert.equal(session.head?.id, 'g333');

  const together = session.restoreVariable('a', 'c111', { together: true });
  assert.equal(comm.sent.filter(r => r.op === 'get')[1].together, true);
  comm.reply('get', { head: restored, loaded: ['a', 'b'], deleted: [], kept: [], seconds: 0, unrestored: {} });
  await together;
});

test('diff asks for value diffs and history lists versions', async () => {
  const { session, comm } = await readySession();
  const diff = session.diff('r000', 'c111');
  assert.equal(comm.sent.find(r => r.op === 'diff').values, true);
  comm.reply('diff', { added: [], deleted: [], changed: ['x'], values: { x: '1 → 2' } });
  assert.deepEqual((await diff).values, { x: '1 → 2' });
  const history = session.history('x');
  assert.equal(comm.sent.find(r => r.op === 'history').name, 'x');
  comm.reply('history', { name: 'x', versions: [{ commit: C1, covariable: 'v', type: 'int', bytes: 28, saved: true, members: ['x'], current: true }] });
  assert.equal((await history)[0].commit.id, 'c111');
});
