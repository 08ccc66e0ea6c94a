/**
 * One notebook's link to its kernel's time-travel history.
 *
 * It follows the notebook's kernel through changes and restarts, decides
 * whether that kernel is the time-travel one (kernelspec name, then the comm
 * handshake), keeps the latest `status` and `log`, and turns kernel events and
 * restarts into notices the UI shows once each.
 */
import type { ISessionContext } from '@jupyterlab/apputils';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import {
  ICheckoutResult,
  ICommit,
  IDiffResult,
  IEvent,
  IRebuildPlan,
  IRebuildResult,
  IStatusResult,
  IVarInfo,
  IVersionInfo,
  ProtocolError,
  TARGET_NAME,
  TimeTravelClient
} from './protocol';

/** Where the link stands; only `ready` enables the commands. */
export type SessionState = 'no-kernel' | 'unsupported' | 'connecting' | 'ready' | 'restarting' | 'failed';

/** Something the user should be told once: the UI turns it into a notification. */
export type Notice =
  | {
      kind: 'restored';
      head: ICommit | null;
      restored: string[];
      unrestored: { [name: string]: string };
      crashed: boolean;
      source: 'event' | 'status';
    }
  | { kind: 'restore-available'; commit: ICommit | null }
  | { kind: 'rebuild-available'; plan: IRebuildPlan; message: string }
  | { kind: 'warning'; message: string };

export interface ISessionOptions {
  /** Kernelspec names that are the time-travel kernel. */
  kernelNames: string[];
  /** How many commits the history shows. */
  historyLimit: number;
}

/** How long a kernel_info round trip may take before reopening is retried at the next idle. */
const KERNEL_INFO_TIMEOUT_MS = 5_000;

/** Pause between two attempts to reopen the comm after a restart. */
const REOPEN_RETRY_MS = 1_000;

/** How long to wait for the kernel's own `restored` event before saying it from `status`. */
const RESTORED_EVENT_GRACE_MS = 2500;

export class TimeTravelSession {
  constructor(sessionContext: ISessionContext, options: ISessionOptions) {
    this.sessionContext = sessionContext;
    this._options = options;
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    this._attach(sessionContext.session?.kernel ?? null);
  }

  readonly sessionContext: ISessionContext;

  /** Emitted whenever anything shown about this session changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted once per thing the user should be told. */
  get notice(): ISignal<this, Notice> {
    return this._notice;
  }

  get state(): SessionState {
    return this._state;
  }

  /** Why the commands are disabled, in words for the user ('' when ready). */
  get hint(): string {
    return this._hint;
  }

  get isReady(): boolean {
    return this._state === 'ready' && this._client !== null && this._client.isOpen;
  }

  /** The kernel's sentence about an unusual state of the history (temporary, read-only). */
  get kernelNotice(): string {
    return this._status?.notice ?? '';
  }

  /** The op now running (`undo`, `checkout`, ...), or null. */
  get pendingOp(): string | null {
    return this._pendingOp;
  }

  get status(): IStatusResult | null {
    return this._status;
  }

  /** Cells whose states are still being saved (not durable yet); 0 when all are saved. */
  get saving(): number {
    return this._saving;
  }

  /** Newest first, all branches. */
  get commits(): ICommit[] {
    return this._commits;
  }

  get head(): ICommit | null {
    return this._status?.head ?? null;
  }

  /** The newest commit recorded by a cell; null while only the session start exists. */
  get lastCheckpoint(): ICommit | null {
    let newest: ICommit | null = null;
    for (const commit of this._commits) {
      if (commit.parent !== null && (!newest || commit.time > newest.time)) {
        newest = commit;
      }
    }
    return newest;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  undo(): Promise<ICheckoutResult> {
    return this._move('undo', {});
  }

  redo(): Promise<ICheckoutResult> {
    return this._move('redo', {});
  }

  restore(): Promise<ICheckoutResult> {
    return this._move('restore', {});
  }

  checkout(commit: string): Promise<ICheckoutResult> {
    return this._move('checkout', { commit });
  }

  /** Run again the recorded cells that rebuild what the last restore left behind. */
  async rebuild(names?: string[]): Promise<IRebuildResult> {
    const result = await this._requireClient().request('rebuild', names?.length ? { names } : {});
    this._scheduleRefresh();
    return result;
  }

  /** The names added, deleted and changed from `a` to `b`, and what changed inside each. */
  diff(a: string, b: string): Promise<IDiffResult> {
    return this._requireClient().request('diff', { a, b, values: true });
  }

  /** The versions `name` had, newest first, all branches. */
  async history(name: string): Promise<IVersionInfo[]> {
    const result = await this._requireClient().request('history', { name });
    return result.versions;
  }

  /** Bring back one name as it was at `commit` (as `asName`), recorded as a new state. */
  restoreVariable(
    name: string,
    commit: string,
    options: { asName?: string; together?: boolean } = {}
  ): Promise<ICheckoutResult> {
    const params: { name: string; commit: string; as?: string; together?: boolean } = { name, commit };
    if (options.asName) {
      params.as = options.asName;
    }
    if (options.together) {
      params.together = true;
    }
    return this._move('get', params);
  }

  async vars(commit?: string): Promise<IVarInfo[]> {
    const result = await this._requireClient().request('vars', commit ? { commit } : {});
    return result.vars;
  }

  /** Re-read `status` and `log`; errors leave the last known values. */
  async refresh(): Promise<void> {
    const client = this._client;
    if (!client || !client.isOpen) {
      return;
    }
    try {
      // `wait: false`: what is durable now, never holding the kernel while states are saved
      // (a Run All would otherwise wait for every snapshot at each refresh).
      const [status, log] = await Promise.all([
        client.request('status', { wait: false }),
        client.request('log', { limit: this._options.historyLimit, wait: false })
      ]);
      if (client !== this._client) {
        return;
      }
      this._status = status;
      this._saving = status.saving ?? 0;
      this._commits = log.commits;
      this._changed.emit();
    } catch (err) {
      // A long-running cell can delay the reply past the timeout: keep what we have.
      console.debug('timetravel: refresh failed', err);
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    clearTimeout(this._refreshTimer);
    this._detach();
    Signal.clearData(this);
  }

  private async _move(op: 'undo' | 'redo' | 'restore' | 'checkout' | 'get', params: any): Promise<ICheckoutResult> {
    const client = this._requireClient();
    if (this._pendingOp) {
      throw new ProtocolError('busy', `Wait for "${this._pendingOp}" to finish.`);
    }
    this._pendingOp = op;
    this._changed.emit();
    try {
      const result = await client.request(op, params);
      if (this._status) {
        this._status = { ...this._status, head: result.head };
      }
      return result;
    } finally {
      this._pendingOp = null;
      this._changed.emit();
      void this.refresh();
    }
  }

  private _requireClient(): TimeTravelClient {
    if (!this.isReady || !this._client) {
      throw new ProtocolError('not-ready', this._hint || 'The time-travel kernel is not connected.');
    }
    return this._client;
  }

  private _onKernelChanged(_: ISessionContext, args: { newValue: Kernel.IKernelConnection | null }): void {
    this._attach(args.newValue);
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    this._detach();
    this._kernel = kernel;
    if (!kernel) {
      this._setState('no-kernel', 'No kernel is running for this notebook. Start "Python 3 (time-travel)".');
      return;
    }
    if (!this._options.kernelNames.includes(kernel.name)) {
      this._setState(
        'unsupported',
        `This notebook's kernel is "${this.sessionContext.kernelDisplayName || kernel.name}". ` +
          'Undo, redo and history need the "Python 3 (time-travel)" kernel: use Kernel › Change Kernel….'
      );
      // A time-travel kernelspec installed under another name still says so in its display name.
      void kernel.spec.then(spec => {
        if (kernel === this._kernel && spec && /\(time-travel\)/.test(spec.display_name)) {
          this._connect(kernel);
        }
      }, () => undefined);
      return;
    }
    this._connect(kernel);
  }

  private _connect(kernel: Kernel.IKernelConnection): void {
    kernel.statusChanged.connect(this._onKernelStatus, this);
    kernel.connectionStatusChanged.connect(this._onConnectionStatus, this);
    kernel.registerCommTarget(TARGET_NAME, this._onKernelComm);
    this._commTargetKernel = kernel;
    void this._open(false);
  }

  private _detach(): void {
    this._client?.dispose();
    this._client = null;
    for (const client of this._kernelClients) {
      client.dispose();
    }
    this._kernelClients = [];
    if (this._kernel && !this._kernel.isDisposed) {
      this._kernel.statusChanged.disconnect(this._onKernelStatus, this);
      this._kernel.connectionStatusChanged.disconnect(this._onConnectionStatus, this);
      if (this._commTargetKernel === this._kernel) {
        this._kernel.removeCommTarget(TARGET_NAME, this._onKernelComm);
      }
    }
    this._commTargetKernel = null;
    this._kernel = null;
    this._status = null;
    this._saving = 0;
    this._commits = [];
    clearTimeout(this._restoredTimer);
    clearTimeout(this._retryTimer);
  }

  /** Open the comm and ask `status`; `afterRestart` says which restart came before. */
  private async _open(afterRestart: 'crash' | 'restart' | false): Promise<void> {
    const kernel = this._kernel;
    if (!kernel || kernel.isDisposed || this._opening) {
      return;
    }
    this._opening = true;
    this._openKind = afterRestart;
    this._setState('connecting', 'Connecting to the time-travel kernel…');
    const comm = kernel.createComm(TARGET_NAME);
    const client = new TimeTravelClient(comm, {});
    this._client = client;
    client.onEvent = event => this._onEvent(event);
    client.onClosed = () => {
      if (this._client === client && this._state === 'ready') {
        this._setState('restarting', 'The time-travel comm closed; waiting for the kernel…');
      }
    };
    try {
      comm.open({});
      const status = await client.request('status', { wait: false });
      if (this._client !== client) {
        return;
      }
      this._status = status;
      this._saving = status.saving ?? 0;
      if (status.enabled === false) {
        this._setState('failed', status.notice || 'Time travel is off for this kernel.');
        return;
      }
      this._setState('ready', '');
      await this.refresh();
      this._afterOpen(status, afterRestart);
    } catch (err) {
      if (this._client !== client) {
        return;
      }
      const code = err instanceof ProtocolError ? err.code : 'error';
      if (code === 'comm-closed') {
        this._setState(
          'unsupported',
          'This kernel did not accept the "timetravel" comm: it is not the time-travel kernel, ' +
            'or an old version of it. Use Kernel › Change Kernel… › "Python 3 (time-travel)".'
        );
      } else if (code === 'timeout') {
        // Most likely a long cell holds the kernel: try again when it is idle.
        this._setState('connecting', 'Waiting for the kernel to finish running cells…');
        this._retryOnIdle = true;
      } else {
        this._setState('failed', `The time-travel kernel answered with an error: ${String(err)}`);
      }
    } finally {
      this._opening = false;
    }
  }

  /** Tell the user about a restore that happened, or one that is on offer. */
  private _afterOpen(status: IStatusResult, afterRestart: 'crash' | 'restart' | false): void {
    if (afterRestart === 'crash' && status.head && status.head.parent !== null) {
      // The kernel restored the state itself; prefer its own `restored` event (it knows
      // what could not be restored), and say it from `status` if that event does not come.
      this._restoredTimer = setTimeout(() => {
        if (!this._restoredNoticeShown && this._status?.head) {
          this._restoredNoticeShown = true;
          this._notice.emit({
            kind: 'restored',
            head: this._status.head,
            restored: [],
            unrestored: {},
            crashed: true,
            source: 'status'
          });
        }
      }, RESTORED_EVENT_GRACE_MS);
      return;
    }
    // `restorable` stays set for the kernel's whole life: offer it from `status` only right
    // after a restart seen here; on a page load the kernel's replayed event (dropped by the
    // kernel once a restore or a jump happened) is the judge.
    const offer = status.restorable;
    if (afterRestart === 'restart' && offer && offer.id !== status.head?.id && !this._restoreOfferShown) {
      this._restoreOfferShown = true;
      this._notice.emit({ kind: 'restore-available', commit: offer });
    }
  }

  private _onEvent(event: IEvent): void {
    switch (event.event) {
      case 'checkpoint': {
        const commit = asCommit(event.commit);
        this._saving = typeof event.saving === 'number' ? event.saving : 0;
        if (commit && this._status) {
          this._status = { ...this._status, head: commit };
          if (!this._commits.some(c => c.id === commit.id)) {
            this._commits = [commit, ...this._commits];
          }
        }
        this._changed.emit();
        this._scheduleRefresh();
        break;
      }
      case 'saving': {
        this._saving = typeof event.saving === 'number' ? event.saving : this._saving + 1;
        this._changed.emit();
        break;
      }
      case 'checkout':
        this._scheduleRefresh();
        break;
      case 'restored': {
        clearTimeout(this._restoredTimer);
        const result = (event.result && typeof event.result === 'object' ? event.result : event) as any;
        const head = asCommit(result.head) ?? asCommit(event.commit) ?? this._status?.head ?? null;
        if (!this._restoredNoticeShown && this._isNewToThisTab(`restored:${head?.id}`)) {
          this._restoredNoticeShown = true;
          this._notice.emit({
            kind: 'restored',
            head,
            restored: Array.isArray(result.loaded) ? result.loaded : Array.isArray(event.restored) ? (event.restored as string[]) : [],
            unrestored: (result.unrestored && typeof result.unrestored === 'object' ? result.unrestored : {}) as any,
            crashed: event.crashed !== false,
            source: 'event'
          });
        }
        this._scheduleRefresh();
        break;
      }
      case 'restore-available': {
        const commit = asCommit(event.commit) ?? asCommit(event.restorable) ?? this._status?.restorable ?? null;
        if (!this._restoreOfferShown && this._isNewToThisTab(`offer:${commit?.id}`)) {
          this._restoreOfferShown = true;
          this._notice.emit({ kind: 'restore-available', commit });
        }
        this._scheduleRefresh();
        break;
      }
      case 'rebuild-available': {
        const plan = event.plan as IRebuildPlan | undefined;
        if (plan && Array.isArray(plan.names) && Array.isArray(plan.steps)) {
          this._notice.emit({ kind: 'rebuild-available', plan, message: String(event.message ?? '') });
        }
        break;
      }
      case 'warning':
        this._onWarning(event);
        break;
      default:
        break;
    }
  }

  /**
   * Whether this tab has not yet told about `what` for this kernel.
   *
   * The kernel replays its startup events (`restored`, `restore-available`) to every comm
   * opened until the state moves, so a page reload would tell them again. A restart seen by
   * this page is always news; on a page load, the tab's sessionStorage remembers what was told.
   */
  private _isNewToThisTab(what: string): boolean {
    const key = `timetravel:${this._kernel?.id ?? ''}:${what}`;
    let seen = false;
    try {
      seen = globalThis.sessionStorage?.getItem(key) === '1';
      globalThis.sessionStorage?.setItem(key, '1');
    } catch {
      // No storage (private mode, tests): tell it.
    }
    return this._openKind !== false || !seen;
  }

  /**
   * Tell a warning once: the kernel repeats "not saved" for every checkpoint that still
   * holds an unsaveable value, and replays its startup warnings to every new comm.
   */
  private _onWarning(event: IEvent): void {
    const names = event.names && typeof event.names === 'object' ? (event.names as { [name: string]: string }) : {};
    const message = String(event.message ?? 'The time-travel kernel sent a warning.');
    const fresh = Object.keys(names).filter(name => !this._warned.has(`name:${name}`));
    if (Object.keys(names).length) {
      if (!fresh.length) {
        return;
      }
      fresh.forEach(name => this._warned.add(`name:${name}`));
      const list = fresh.map(name => `${name} (${names[name]})`).join(', ');
      this._notice.emit({
        kind: 'warning',
        message: `${message === 'not saved' ? 'Not saved, will not come back after an undo or a crash' : message}: ${list}.`
      });
      return;
    }
    if (!this._warned.has(`message:${message}`)) {
      this._warned.add(`message:${message}`);
      this._notice.emit({ kind: 'warning', message });
    }
  }

  /** A comm the kernel opened itself carries events only. */
  private _onKernelComm = (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg): void => {
    const client = new TimeTravelClient(comm, {});
    client.onEvent = event => this._onEvent(event);
    this._kernelClients.push(client);
    const data = msg.content.data as any;
    if (data && typeof data.event === 'string') {
      this._onEvent(data as IEvent);
    }
  };

  private _onKernelStatus(kernel: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (status === 'autorestarting' || status === 'restarting') {
      this._restartKind = status === 'autorestarting' ? 'crash' : this._restartKind ?? 'restart';
      this._client?.dispose();
      this._client = null;
      this._restoredNoticeShown = false;
      this._restoreOfferShown = false;
      this._warned.clear();
      this._setState('restarting', 'The kernel is restarting…');
      return;
    }
    if (status === 'dead') {
      this._client?.dispose();
      this._client = null;
      this._restartKind = 'crash';
      this._setState('restarting', 'The kernel died; waiting for it to restart…');
      return;
    }
    if (status === 'idle' || status === 'busy') {
      if (this._retryOnIdle && status === 'idle' && this._client && !this._opening) {
        this._retryOnIdle = false;
        this._client.dispose();
        this._client = null;
        void this._open(false);
        return;
      }
      this._ensureOpen();
    }
  }

  private _onConnectionStatus(_: Kernel.IKernelConnection, status: Kernel.ConnectionStatus): void {
    if (status === 'connected') {
      this._ensureOpen();
    }
  }

  /** Reopen the comm if it is closed and the kernel is connected and running. */
  private _ensureOpen(): void {
    const kernel = this._kernel;
    if (!kernel || kernel.isDisposed || this._opening || this._state === 'unsupported') {
      return;
    }
    if ((this._client && this._client.isOpen) || kernel.connectionStatus !== 'connected') {
      return;
    }
    if (kernel.status !== 'idle' && kernel.status !== 'busy') {
      return;
    }
    const kind = this._restartKind ?? false;
    this._restartKind = null;
    void this._reopen(kernel, kind);
  }

  /**
   * Open the comm again once the kernel that answers is the restarted one.
   *
   * Statuses of the old process can still arrive during a restart. JupyterLab 4.6 sends comm
   * messages on a per-target kernel subshell that it creates when the comm is made: made
   * too early, that subshell lives in the old process and the new one rejects every message
   * ("Unknown subshell_id"). A kernel_info round trip is queued until the reconnect, so its
   * reply comes from the new process.
   */
  private async _reopen(kernel: Kernel.IKernelConnection, kind: 'crash' | 'restart' | false): Promise<void> {
    this._opening = true;
    let answered = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // Bounded: a reply lost in a second restart must not stop the comm from reopening.
      answered = await Promise.race([
        kernel.requestKernelInfo().then(reply => reply !== undefined),
        new Promise<boolean>(resolve => {
          timer = setTimeout(() => resolve(false), KERNEL_INFO_TIMEOUT_MS);
        })
      ]);
    } catch (err) {
      console.debug('timetravel: kernel_info after restart failed', err);
    } finally {
      clearTimeout(timer);
      this._opening = false;
    }
    if (kernel !== this._kernel || kernel.isDisposed || (this._client && this._client.isOpen)) {
      return;
    }
    if (answered) {
      await this._open(kind);
    } else {
      // Try again soon, still remembering which restart it was.
      this._restartKind = kind || null;
      clearTimeout(this._retryTimer);
      this._retryTimer = setTimeout(() => this._ensureOpen(), REOPEN_RETRY_MS);
    }
  }

  private _scheduleRefresh(): void {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = setTimeout(() => void this.refresh(), 150);
  }

  private _setState(state: SessionState, hint: string): void {
    this._state = state;
    this._hint = hint;
    this._changed.emit();
  }

  private _options: ISessionOptions;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _commTargetKernel: Kernel.IKernelConnection | null = null;
  private _client: TimeTravelClient | null = null;
  private _kernelClients: TimeTravelClient[] = [];
  private _state: SessionState = 'no-kernel';
  private _hint = '';
  private _status: IStatusResult | null = null;
  private _saving = 0;
  private _commits: ICommit[] = [];
  private _pendingOp: string | null = null;
  private _opening = false;
  private _retryOnIdle = false;
  private _restartKind: 'crash' | 'restart' | null = null;
  private _restoredNoticeShown = false;
  private _openKind: 'crash' | 'restart' | false = false;
  private _warned = new Set<string>();
  private _restoreOfferShown = false;
  private _restoredTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  private _refreshTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  private _retryTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
  private _notice = new Signal<this, Notice>(this);
}

/** Accept a value as a commit only if it has the fields the UI reads. */
function asCommit(value: unknown): ICommit | null {
  if (value && typeof value === 'object' && typeof (value as ICommit).id === 'string') {
    return value as ICommit;
  }
  return null;
}
