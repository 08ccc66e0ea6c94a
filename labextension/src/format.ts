/**
 * Pure helpers that turn protocol records into what the UI shows: sizes,
 * durations, relative times, one-line code summaries, the lanes of the commit
 * tree. No DOM and no JupyterLab here, so node's test runner checks them.
 */
import type { ICheckoutResult, ICommit, IRebuildPlan, IRebuildResult } from './protocol';

/** `1536` -> `1.5 KB`; binary multiples, one decimal below 10 units. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) {
    return '?';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) {
    return `${bytes} B`;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** The store's size, against its budget when it has one: `1.5 MB of 2 GB`. */
export function formatStoreSize(store: { bytes: number; budget?: number | null }): string {
  const size = formatBytes(store.bytes);
  if (store.budget === undefined || store.budget === null) {
    return size;
  }
  const over = store.bytes > store.budget ? ' (over budget: thinning)' : '';
  return `${size} of ${formatBytes(store.budget)}${over}`;
}

/** Seconds -> `850 ms`, `3.2 s`, `2 min 5 s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    return '?';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

/** Unix seconds -> local `HH:MM:SS`, with the date when it is not today. */
export function formatTime(unixSeconds: number, now: Date = new Date()): string {
  const date = new Date(unixSeconds * 1000);
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  if (date.toDateString() === now.toDateString()) {
    return time;
  }
  return `${date.toLocaleDateString()} ${time}`;
}

/** How long ago, coarse: `just now`, `42 s ago`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function formatAgo(unixSeconds: number, nowMs: number = Date.now()): string {
  const seconds = Math.max(0, Math.round(nowMs / 1000 - unixSeconds));
  if (seconds < 5) {
    return 'just now';
  }
  if (seconds < 60) {
    return `${seconds} s ago`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h ago`;
  }
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** The first 7 hex digits, as git shows them. */
export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 7) : '-';
}

/** The first non-blank line of a cell, cut to `max` characters. */
export function codeSummary(code: string, max = 60): string {
  const line = code.split('\n').find(l => l.trim() !== '') ?? '';
  const more = code.trim().split('\n').length > 1;
  let text = line.trim();
  if (text.length > max) {
    text = text.slice(0, max - 1) + '…';
  } else if (more) {
    text += ' …';
  }
  return text || '(empty cell)';
}

/** How a commit is named in messages: `[3] x = 2` or `the session start`. */
export function describeCommit(commit: ICommit | null | undefined): string {
  if (!commit) {
    return 'no state';
  }
  if (commit.parent === null) {
    return 'the session start';
  }
  const count = commit.execution_count === null ? '' : `[${commit.execution_count}] `;
  return `${count}${codeSummary(commit.code, 40)}`;
}

/** A list of names for a sentence: `a, b and 3 more`. */
export function listNames(names: string[], max = 5): string {
  if (names.length === 0) {
    return 'nothing';
  }
  if (names.length <= max) {
    return names.join(', ');
  }
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** One sentence about a checkout: what was loaded, deleted, and not restored. */
export function summarizeCheckout(result: ICheckoutResult): string {
  const parts = [`Now at ${describeCommit(result.head)}`];
  if (result.loaded.length) {
    parts.push(`loaded ${listNames(result.loaded)}`);
  }
  if (result.deleted.length) {
    parts.push(`removed ${listNames(result.deleted)}`);
  }
  if (!result.loaded.length && !result.deleted.length) {
    parts.push('no variable changed');
  }
  const unrestored = Object.keys(result.unrestored ?? {});
  if (unrestored.length) {
    parts.push(`could not restore ${listNames(unrestored)} (re-run the cells that made them)`);
  }
  return `${parts.join('; ')} (${formatDuration(result.seconds)}).`;
}

/** One sentence offering a rebuild: the values, the cells and their recorded run time. */
export function summarizeRebuildPlan(plan: IRebuildPlan): string {
  const cells = plan.steps.filter(s => s.kind === 'run').map(s => `[${s.execution_count ?? '?'}]`);
  const reconnects = plan.steps.filter(s => s.kind === 'reconnect').flatMap(s => s.names);
  const how: string[] = [];
  if (cells.length) {
    how.push(`running cells ${cells.join(', ')} again (recorded ${formatDuration(plan.seconds)})`);
  }
  if (reconnects.length) {
    how.push(`reconnecting ${listNames(reconnects)}`);
  }
  return `${listNames(plan.names, 8)} can be rebuilt by ${how.join(' and ') || 'nothing'}.`;
}

/** The code a rebuild runs, cell by cell, to show before it runs. */
export function rebuildCode(plan: IRebuildPlan): string {
  return plan.steps
    .map(s =>
      s.kind === 'reconnect'
        ? `# reconnect ${s.names.join(', ')} (no cell runs)`
        : `# cell [${s.execution_count ?? '?'}], recorded ${formatDuration(s.seconds)}, for ${s.names.join(', ')}\n${s.code.trimEnd()}`
    )
    .join('\n');
}

/** One sentence about a finished rebuild. */
export function summarizeRebuild(result: IRebuildResult): string {
  const failed = Object.keys(result.failed);
  const tail = failed.length ? `; not rebuilt: ${failed.map(n => `${n} (${result.failed[n]})`).join('; ')}` : '';
  return `Rebuilt ${listNames(result.rebuilt, 8)} (${result.cells_run} cells run again, ${formatDuration(result.seconds)})${tail}.`;
}

/** One row of the commit tree: the commit, its lane, and the lines drawn beside it. */
export interface ITreeRow {
  commit: ICommit;
  /** The lane of the commit's dot. */
  lane: number;
  /** How many lanes the row needs to draw. */
  lanes: number;
  /** A newer commit (a child) continues this lane above the dot. */
  hasChild: boolean;
  /** The parent is listed: the lane continues below the dot. */
  hasParent: boolean;
  /** Lanes that pass by this row on their way to an older commit. */
  through: number[];
  /** Lanes of other children that end here, joining the dot from above. */
  joined: number[];
  onHeadPath: boolean;
}

/**
 * Lay out commits (newest first, any branches) in lanes, as `git log --graph`
 * does for a tree: a commit takes the lane that waits for it, or a free one;
 * then that lane waits for its parent. Children of one parent meet in the
 * leftmost lane. Commits whose parent is absent from the list end their lane.
 */
export function layoutTree(commits: ICommit[], headId: string | null): ITreeRow[] {
  const byId = new Map(commits.map(c => [c.id, c]));
  const onHead = new Set<string>();
  for (let id = headId; id && byId.has(id) && !onHead.has(id); id = byId.get(id)!.parent) {
    onHead.add(id);
  }
  const waiting: (string | null)[] = [];
  const rows: ITreeRow[] = [];
  for (const commit of commits) {
    const found = waiting.indexOf(commit.id);
    let lane = found;
    if (lane === -1) {
      lane = waiting.indexOf(null);
      if (lane === -1) {
        lane = waiting.length;
        waiting.push(null);
      }
    }
    const joined: number[] = [];
    const through: number[] = [];
    for (let i = 0; i < waiting.length; i++) {
      if (i === lane) {
        continue;
      }
      if (waiting[i] === commit.id) {
        joined.push(i);
        waiting[i] = null;
      } else if (waiting[i] !== null) {
        through.push(i);
      }
    }
    const width = waiting.length;
    const parent = commit.parent && byId.has(commit.parent) ? commit.parent : null;
    waiting[lane] = parent;
    while (waiting.length && waiting[waiting.length - 1] === null) {
      waiting.pop();
    }
    rows.push({
      commit,
      lane,
      lanes: Math.max(width, lane + 1),
      hasChild: found !== -1,
      hasParent: parent !== null,
      through,
      joined,
      onHeadPath: onHead.has(commit.id)
    });
  }
  return rows;
}
