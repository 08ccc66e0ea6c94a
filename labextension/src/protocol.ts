/**
 * The `timetravel` comm protocol v1, as a typed request/reply client.
 *
 * This module knows nothing of JupyterLab: it talks to anything shaped like a
 * comm (`send`, `onMsg`, `onClose`), so it is unit-tested in plain node.
 * Op names and fields follow docs/protocol.md (DESIGN.md "Comm protocol v1");
 * they are never renamed here, only read.
 */

/** The comm target the kernel registers. */
export const TARGET_NAME = 'timetravel';

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** A commit as it appears in every reply and event. */
export interface ICommit {
  id: string;
  parent: string | null;
  execution_count: number | null;
  cell_id: string | null;
  code: string;
  time: number;
  duration: number;
  status: 'ok' | 'error';
  changed: string[];
  bytes_written: number;
  /** Cells this state records: more than one only when earlier cells' states could not be saved. */
  cells: number;
}

export interface IStatusResult {
  protocol: number;
  head: ICommit | null;
  commits: number;
  store: { path: string; bytes: number; budget?: number | null };
  restorable: ICommit | null;
  /** Added within v1 by the kernel: false when time travel could not start. */
  enabled?: boolean;
  /** Added within v1: the history is read-only (moves are refused). */
  read_only?: boolean;
  /** Added within v1: one sentence about an unusual state (temporary history, off, ...). */
  notice?: string | null;
  /** Added within v1: cells whose states are still being saved (not durable yet). */
  saving?: number;
}

export interface ILogResult {
  commits: ICommit[];
}

export interface ICheckoutResult {
  head: ICommit;
  loaded: string[];
  deleted: string[];
  kept: string[];
  seconds: number;
  unrestored: { [name: string]: string };
  /** Added within v1: loaded names made again from their descriptions (files, sqlite3 file
   * connections, locks, events), no cell run. */
  reconnected?: string[];
}

export interface IDiffResult {
  added: string[];
  deleted: string[];
  changed: string[];
  /** Added within v1, when asked with `values: true`: what changed inside each changed name. */
  values?: { [name: string]: string };
}

/** One version of a name (`history`); `covariable` is null where the commit deleted it. */
export interface IVersionInfo {
  commit: ICommit;
  covariable: string | null;
  type: string;
  bytes: number;
  saved: boolean;
  /** Every name stored with it (they share objects); restored together. */
  members: string[];
  /** HEAD has this very version. */
  current: boolean;
  reason?: string;
}

export interface IHistoryResult {
  name: string;
  versions: IVersionInfo[];
}

export interface IVarInfo {
  name: string;
  type: string;
  bytes: number;
  covariable: string | string[];
  saved: boolean;
  reason?: string;
}

export interface IVarsResult {
  vars: IVarInfo[];
}

/** One step of a rebuild: a recorded cell run again, or values reconnected. */
export interface IRebuildStep {
  kind: 'run' | 'reconnect';
  names: string[];
  commit: string | null;
  execution_count: number | null;
  code: string;
  seconds: number;
}

/** Result of `rebuild-preview` (and the `plan` of a `rebuild-available` event). */
export interface IRebuildPlan {
  at: ICommit;
  names: string[];
  steps: IRebuildStep[];
  seconds: number;
  impossible: { [name: string]: string };
}

/** Result of `rebuild`. */
export interface IRebuildResult {
  rebuilt: string[];
  failed: { [name: string]: string };
  cells_run: number;
  seconds: number;
}

/** Params and results of every op, so `request` is typed by op name. */
export interface IOps {
  status: { params: { wait?: boolean }; result: IStatusResult };
  log: { params: { limit?: number; wait?: boolean }; result: ILogResult };
  checkout: { params: { commit: string }; result: ICheckoutResult };
  undo: { params: Record<string, never>; result: ICheckoutResult };
  redo: { params: Record<string, never>; result: ICheckoutResult };
  diff: { params: { a: string; b: string; values?: boolean }; result: IDiffResult };
  vars: { params: { commit?: string }; result: IVarsResult };
  restore: { params: Record<string, never>; result: ICheckoutResult };
  'rebuild-preview': { params: { names?: string[] }; result: IRebuildPlan };
  rebuild: { params: { names?: string[]; budget?: number }; result: IRebuildResult };
  history: { params: { name: string }; result: IHistoryResult };
  get: { params: { name: string; commit: string; as?: string; together?: boolean }; result: ICheckoutResult };
}

export type OpName = keyof IOps;

export type EventName =
  | 'checkpoint'
  | 'saving'
  | 'checkout'
  | 'restored'
  | 'restore-available'
  | 'rebuild-available'
  | 'rebuilt'
  | 'warning';

/**
 * An unasked message from the kernel. Fields beyond `event` are read
 * defensively: the protocol may add fields within v1.
 */
export interface IEvent {
  event: EventName | string;
  [key: string]: unknown;
}

/** The smallest comm surface the client needs (IComm satisfies it). */
export interface ICommLike {
  send(data: any): unknown;
  onMsg: (msg: any) => void;
  onClose: (msg: any) => void;
  close(data?: any): unknown;
}

/** An error reply, or a failure of the transport, as an Error. */
export class ProtocolError extends Error {
  /** The protocol error code (`nothing-to-undo`, `busy`, ...) or a local one. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

interface IPending {
  resolve: (value: any) => void;
  reject: (reason: ProtocolError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Default reply timeouts in ms; a checkout loads data and may take longer. */
export const DEFAULT_TIMEOUTS: { [op: string]: number } = {
  checkout: 120_000,
  undo: 120_000,
  redo: 120_000,
  restore: 120_000,
  rebuild: 900_000,
  get: 120_000,
  diff: 60_000,
  default: 15_000
};

/**
 * One open comm: sends requests with fresh ids, matches replies, forwards events.
 *
 * Replies are matched by `id` only, so several requests may be in flight.
 * When the comm closes (kernel restart, or the kernel has no `timetravel`
 * target) every pending request is rejected with code `comm-closed`.
 */
export class TimeTravelClient {
  constructor(comm: ICommLike, options: { timeouts?: { [op: string]: number } } = {}) {
    this._comm = comm;
    this._timeouts = { ...DEFAULT_TIMEOUTS, ...(options.timeouts ?? {}) };
    comm.onMsg = msg => this._handle(msg.content.data);
    comm.onClose = msg => this._closed(msg?.content?.data);
  }

  /** Whether the comm is still usable. */
  get isOpen(): boolean {
    return !this._isClosed;
  }

  /** Called for every event the kernel sends on this comm. */
  onEvent: (event: IEvent) => void = () => undefined;

  /** Called once when the comm closes, with the reason if the kernel gave one. */
  onClosed: (reason: string) => void = () => undefined;

  /** Send one request and wait for its reply. */
  request<K extends OpName>(op: K, params?: IOps[K]['params']): Promise<IOps[K]['result']> {
    if (this._isClosed) {
      return Promise.reject(new ProtocolError('comm-closed', 'The time-travel comm is closed.'));
    }
    const id = `${this._prefix}-${++this._counter}`;
    const timeout = this._timeouts[op] ?? this._timeouts.default;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ProtocolError('timeout', `The kernel did not answer "${op}" within ${timeout / 1000} s.`));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      try {
        this._comm.send({ ...(params ?? {}), id, op });
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new ProtocolError('send-failed', String(err)));
      }
    });
  }

  /** Close the comm and fail what is pending. */
  dispose(): void {
    if (this._isClosed) {
      return;
    }
    try {
      this._comm.close();
    } catch {
      // The kernel may already be gone; closing is best effort.
    }
    this._closed('disposed');
  }

  /** Route one incoming message: a reply (has `id` and `ok`) or an event. */
  private _handle(data: any): void {
    if (data === null || typeof data !== 'object') {
      return;
    }
    if (typeof data.event === 'string') {
      this.onEvent(data as IEvent);
      return;
    }
    const pending = typeof data.id === 'string' ? this._pending.get(data.id) : undefined;
    if (!pending) {
      return; // A late reply after a timeout, or not ours.
    }
    this._pending.delete(data.id);
    clearTimeout(pending.timer);
    if (data.ok === true) {
      pending.resolve(data.result ?? {});
    } else {
      const error = data.error ?? {};
      pending.reject(
        new ProtocolError(String(error.code ?? 'error'), String(error.message ?? 'The kernel refused the request.'))
      );
    }
  }

  private _closed(data: any): void {
    if (this._isClosed) {
      return;
    }
    this._isClosed = true;
    const reason =
      data && typeof data === 'object' && typeof data.reason === 'string' ? data.reason : 'closed';
    for (const [, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new ProtocolError('comm-closed', 'The time-travel comm closed before the kernel replied.'));
    }
    this._pending.clear();
    this.onClosed(reason);
  }

  private _comm: ICommLike;
  private _timeouts: { [op: string]: number };
  private _pending = new Map<string, IPending>();
  private _counter = 0;
  private _prefix = Math.random().toString(36).slice(2, 10);
  private _isClosed = false;
}
