// Generated from timetravel_kernel/protocol/messages.py and requests.py by
// `python -m timetravel_kernel.protocol.typescript > labextension/src/wire.ts`: do not edit.
// tests/protocol/test_typescript.py fails while this file differs from a fresh generation.

export const COMM_TARGET = 'timetravel';

export const PROTOCOL_VERSION = 1;

export type Op =
  | 'status'
  | 'log'
  | 'checkout'
  | 'undo'
  | 'redo'
  | 'diff'
  | 'vars'
  | 'restore'
  | 'history'
  | 'get'
  | 'rebuild-preview'
  | 'rebuild';

export type CheckoutOp = 'checkout' | 'undo' | 'redo' | 'restore' | 'get';

export type EventName =
  | 'checkpoint'
  | 'saving'
  | 'checkout'
  | 'restored'
  | 'restore-available'
  | 'warning'
  | 'rebuild-available'
  | 'rebuilt';

export type ErrorCode =
  | 'bad-request'
  | 'unknown-op'
  | 'unknown-commit'
  | 'busy'
  | 'nothing-to-undo'
  | 'nothing-to-redo'
  | 'nothing-to-restore'
  | 'disabled'
  | 'read-only'
  | 'store-error'
  | 'store-locked'
  | 'store-corrupt'
  | 'store-format'
  | 'missing-object'
  | 'serialization'
  | 'timeline-error'
  | 'internal'
  | 'unknown-name'
  | 'covariable'
  | 'not-enough-memory';

/** a commit id: 32 lowercase hex digits */
export type CommitHex = string;

/** A commit as every reply and event shows it. */
export interface CommitJSON {
  id: CommitHex;
  parent: CommitHex | null;
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

/** Where the history lives, how large it is on disk, and its size budget (null: none). */
export interface StoreInfo {
  path: string;
  bytes: number;
  budget?: number | null;
}

/** The `remote` of `status`: where pushes go and how many states are not there yet. */
export interface RemoteStatusJSON {
  url: string;
  unpushed: number;
  error: string | null;
  last_push: number | null;
}

/** Result of `status`; `enabled`, `notice` and `remote` extend the design's fields. */
export interface StatusReply {
  protocol: 1;
  head: CommitJSON | null;
  commits: number;
  store: StoreInfo;
  restorable: CommitJSON | null;
  /** false when time travel could not start */
  enabled: boolean;
  /** the history is read-only (moves are refused) */
  read_only: boolean;
  /** one sentence about an unusual state (temporary history, off, ...) */
  notice: string | null;
  /** cells whose states are still being saved (not durable yet) */
  saving: number;
  /** present when the kernel pushes to a remote */
  remote?: RemoteStatusJSON;
}

/** Result of `log`: newest first, all branches. */
export interface LogReply {
  commits: CommitJSON[];
}

/** Result of `checkout`, `undo`, `redo`, `restore` and `get`. */
export interface CheckoutReply {
  head: CommitJSON;
  loaded: string[];
  deleted: string[];
  kept: string[];
  seconds: number;
  unrestored: { [name: string]: string };
  /**
   * loaded names made again from their descriptions (files, sqlite3 file connections, locks,
   * events), no cell run
   */
  reconnected: string[];
}

/** Result of `diff`. */
export interface DiffReply {
  added: string[];
  deleted: string[];
  changed: string[];
  /** when asked with `values: true`: what changed inside each changed name */
  values?: { [name: string]: string };
}

/** One name of a commit. */
export interface VarJSON {
  name: string;
  type: string;
  bytes: number;
  covariable: string;
  saved: boolean;
  reason?: string;
}

/** One version of a name; `covariable` is null where the commit deleted the name. */
export interface VersionJSON {
  commit: CommitJSON;
  covariable: string | null;
  type: string;
  bytes: number;
  saved: boolean;
  /** every name stored with it (they share objects); restored together */
  members: string[];
  /** HEAD has this very version */
  current: boolean;
  reason?: string;
}

/** Result of `history`: the versions of one name, newest first, all branches. */
export interface HistoryReply {
  name: string;
  versions: VersionJSON[];
}

/** Result of `vars`. */
export interface VarsReply {
  vars: VarJSON[];
}

/** One step of a rebuild: a recorded cell to run again, or values to reconnect. */
export interface RebuildStepJSON {
  kind: 'run' | 'reconnect';
  names: string[];
  commit: CommitHex | null;
  execution_count: number | null;
  code: string;
  seconds: number;
}

/** Result of `rebuild-preview` (and a `rebuild-available` event's `plan`). */
export interface RebuildPlanJSON {
  at: CommitJSON;
  names: string[];
  steps: RebuildStepJSON[];
  seconds: number;
  impossible: { [name: string]: string };
}

/** Result of `rebuild`: the names brought back and why the others were not. */
export interface RebuildReply {
  rebuilt: string[];
  failed: { [name: string]: string };
  cells_run: number;
  seconds: number;
}

export type OpResult =
  | StatusReply
  | LogReply
  | CheckoutReply
  | DiffReply
  | VarsReply
  | RebuildPlanJSON
  | RebuildReply
  | HistoryReply;

/** Why a request failed and what to do. */
export interface ErrorInfo {
  code: ErrorCode;
  message: string;
}

/** A successful reply. */
export interface OkReply {
  id: string | null;
  ok: true;
  result: OpResult;
}

/** A failed reply; `id` is null only when the request had no usable id. */
export interface ErrorReply {
  id: string | null;
  ok: false;
  error: ErrorInfo;
}

export type Reply = OkReply | ErrorReply;

/** Sent once a cell's state is durable. */
export interface CheckpointEvent {
  event: 'checkpoint';
  commit: CommitJSON;
  unsaved: { [name: string]: string };
  seconds: number;
  /** cells still being saved after this one */
  saving: number;
}

/** Sent when a cell's state is being saved in the background (not durable yet). */
export interface SavingEvent {
  event: 'saving';
  saving: number;
  execution_count: number | null;
}

/** Sent after any op that moved HEAD, whoever asked for it: the op and its result. */
export interface CheckoutEvent extends CheckoutReply {
  event: 'checkout';
  op: CheckoutOp;
}

/** Sent when the kernel brought back a previous session's state on its own. */
export interface RestoredEvent {
  event: 'restored';
  head: CommitJSON;
  crashed: boolean;
  unrestored: { [name: string]: string };
  reconnected: string[];
  message: string;
}

/** Sent when a previous session's state can be restored with `restore`. */
export interface RestoreAvailableEvent {
  event: 'restore-available';
  restorable: CommitJSON;
  crashed: boolean;
  message: string;
}

/** Something was not saved or restored, or the store cannot be used as configured. */
export interface WarningEvent {
  event: 'warning';
  message: string;
  names: { [name: string]: string };
  /** the cell whose state could not be saved, when the warning is about one */
  execution_count?: number | null;
}

/** Sent after a restore left unsaveable values behind that recorded cells can rebuild. */
export interface RebuildAvailableEvent {
  event: 'rebuild-available';
  plan: RebuildPlanJSON;
  message: string;
}

/** Sent when a rebuild changed the live namespace: the `rebuild` result. */
export interface RebuiltEvent extends RebuildReply {
  event: 'rebuilt';
}

export type KernelEvent =
  | CheckpointEvent
  | SavingEvent
  | CheckoutEvent
  | RestoredEvent
  | RestoreAvailableEvent
  | WarningEvent
  | RebuildAvailableEvent
  | RebuiltEvent;

export const MAX_ID_LENGTH = 200;

/** chosen by the client; its reply carries it back */
export type RequestId = string;

/** Parameters of `status`. */
export interface StatusParams {
  /**
   * false: answer at once from the states already durable (default true: first wait until every
   * finished cell's state is)
   */
  wait?: boolean;
}

/** Parameters of `log`. */
export interface LogParams {
  /** at most this many commits, newest first */
  limit?: number;
  /**
   * false: answer at once from the states already durable (default true: first wait until every
   * finished cell's state is)
   */
  wait?: boolean;
}

/** Parameters of an op that has none. */
export type NoParams = Record<string, never>;

/** Parameters of `checkout`. */
export interface CheckoutParams {
  commit: string;
}

/** Parameters of `diff`. */
export interface DiffParams {
  a: string;
  b: string;
  values?: boolean;
}

/** Parameters of `vars`. */
export interface VarsParams {
  commit?: string;
}

/** Parameters of `history`. */
export interface HistoryParams {
  name: string;
}

/** Parameters of `get`. */
export interface GetParams {
  name: string;
  commit: string;
  as?: string;
  together?: boolean;
}

/** Parameters of `rebuild-preview`. */
export interface RebuildPreviewParams {
  /** the lost names to rebuild (default: all of them) */
  names?: string[];
}

/** Parameters of `rebuild`. */
export interface RebuildParams {
  /** the lost names to rebuild (default: all of them) */
  names?: string[];
  /** seconds the rebuild may run (default: the kernel's rebuild_budget) */
  budget?: number;
}

/** Each op's parameters (beside `id` and `op`) and the result of its ok reply. */
export interface Ops {
  status: { params: StatusParams; result: StatusReply };
  log: { params: LogParams; result: LogReply };
  checkout: { params: CheckoutParams; result: CheckoutReply };
  undo: { params: NoParams; result: CheckoutReply };
  redo: { params: NoParams; result: CheckoutReply };
  diff: { params: DiffParams; result: DiffReply };
  vars: { params: VarsParams; result: VarsReply };
  restore: { params: NoParams; result: CheckoutReply };
  history: { params: HistoryParams; result: HistoryReply };
  get: { params: GetParams; result: CheckoutReply };
  'rebuild-preview': { params: RebuildPreviewParams; result: RebuildPlanJSON };
  rebuild: { params: RebuildParams; result: RebuildReply };
}
