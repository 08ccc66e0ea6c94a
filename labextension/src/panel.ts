/**
 * The History side panel: the current notebook's commit tree, click a commit
 * to check it out, tick two to see what changed between them (names and what
 * changed inside each value); its Variables view restores single values.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { historyIcon } from './icons';
import {
  codeSummary,
  describeCommit,
  formatBytes,
  formatDuration,
  formatStoreSize,
  formatTime,
  layoutTree,
  listNames,
  shortId,
  summarizeCheckout
} from './format';
import type { ITreeRow } from './format';
import type { SessionRegistry } from './registry';
import type { TimeTravelSession } from './session';
import { VariablesView } from './variables';

type View = 'states' | 'variables';

/** Pixels between two lanes of the tree, and from a row's top to its dot's centre. */
const LANE_WIDTH = 14;
const DOT_Y = 9;

/** The tree beside one row: lines of passing lanes, the joins from above, the dot. */
function renderGraph(tree: ITreeRow): HTMLElement {
  const graph = document.createElement('div');
  graph.className = 'jp-TimeTravel-graph';
  graph.style.width = `${tree.lanes * LANE_WIDTH}px`;
  const x = (lane: number): number => lane * LANE_WIDTH + LANE_WIDTH / 2;
  const line = (left: number, top: number, width: number, height: number | null): void => {
    const el = document.createElement('span');
    el.className = 'jp-TimeTravel-edge';
    el.style.left = `${left - 1}px`;
    el.style.top = `${top}px`;
    el.style.width = `${width + 2}px`;
    if (height === null) {
      el.style.bottom = '0';
    } else {
      el.style.height = `${height}px`;
    }
    graph.append(el);
  };
  for (const lane of tree.through) {
    line(x(lane), 0, 0, null);
  }
  if (tree.hasChild) {
    line(x(tree.lane), 0, 0, DOT_Y);
  }
  if (tree.hasParent) {
    line(x(tree.lane), DOT_Y, 0, null);
  }
  for (const lane of tree.joined) {
    line(x(lane), 0, 0, DOT_Y);
    line(Math.min(x(lane), x(tree.lane)), DOT_Y - 1, Math.abs(x(lane) - x(tree.lane)), 0);
  }
  const dot = document.createElement('span');
  dot.className = 'jp-TimeTravel-dot';
  dot.style.left = `${x(tree.lane) - 5}px`;
  dot.style.top = `${DOT_Y - 5}px`;
  graph.append(dot);
  return graph;
}

export class HistoryPanel extends Widget {
  constructor(registry: SessionRegistry) {
    super();
    this._registry = registry;
    this.id = 'timetravel-history';
    this.addClass('jp-TimeTravel-panel');
    this.title.icon = historyIcon;
    this.title.caption = 'Cell-state history (time travel)';
    this.node.tabIndex = -1;

    const header = document.createElement('div');
    header.className = 'jp-TimeTravel-header';
    const title = document.createElement('h2');
    title.textContent = 'History';
    this._summary.className = 'jp-TimeTravel-summary';
    header.append(title, this._summary);

    const buttons = document.createElement('div');
    buttons.className = 'jp-TimeTravel-buttons';
    this._undoButton = this._button('Undo', 'jp-TimeTravel-undo', () => this._run(s => s.undo()));
    this._redoButton = this._button('Redo', 'jp-TimeTravel-redo', () => this._run(s => s.redo()));
    this._refreshButton = this._button('Refresh', 'jp-TimeTravel-refresh', () => void this._registry.current?.refresh());
    buttons.append(this._undoButton, this._redoButton, this._refreshButton);

    this._hint.className = 'jp-TimeTravel-hint';
    this._message.className = 'jp-TimeTravel-message';
    this._diff.className = 'jp-TimeTravel-diff';
    this._list.className = 'jp-TimeTravel-list';
    this._list.setAttribute('role', 'list');
    this._help.className = 'jp-TimeTravel-help';
    this._tabs.className = 'jp-TimeTravel-tabs';
    this._tabs.setAttribute('role', 'tablist');
    for (const [view, label] of [['states', 'States'], ['variables', 'Variables']] as [View, string][]) {
      const tab = document.createElement('button');
      tab.className = 'jp-TimeTravel-tab';
      tab.dataset.view = view;
      tab.setAttribute('role', 'tab');
      tab.textContent = label;
      tab.addEventListener('click', () => {
        this._view = view;
        this._render();
      });
      this._tabs.append(tab);
    }
    this._variables = new VariablesView(text => {
      this._message.textContent = text;
    });
    this.node.append(
      header,
      buttons,
      this._hint,
      this._tabs,
      this._help,
      this._diff,
      this._message,
      this._list,
      this._variables.node
    );

    registry.changed.connect(this._onChanged, this);
    this._onChanged();
  }

  dispose(): void {
    this._registry.changed.disconnect(this._onChanged, this);
    super.dispose();
  }

  private _onChanged(): void {
    const session = this._registry.current;
    if (session !== this._session) {
      this._session = session;
      this._selected = [];
      this._diff.textContent = '';
      this._message.textContent = '';
    }
    this._render();
  }

  private _render(): void {
    const session = this._session;
    const ready = !!session && session.isReady;
    const busy = !!session?.pendingOp;
    this.toggleClass('jp-mod-disabled', !ready);
    const notice = ready ? (session?.kernelNotice ?? '') : this._registry.currentHint;
    this._hint.textContent = notice;
    this._hint.hidden = !notice;
    this._undoButton.disabled = !ready || busy;
    this._redoButton.disabled = !ready || busy;
    this._refreshButton.disabled = !ready;

    const status = session?.status;
    if (ready && status) {
      this._summary.textContent =
        `${status.commits} state${status.commits === 1 ? '' : 's'} · ` +
        `${formatStoreSize(status.store)} on disk · head ${shortId(status.head?.id)}`;
      this._summary.title = `Store: ${status.store.path}`;
    } else {
      this._summary.textContent = '';
      this._summary.title = '';
    }

    const states = this._view === 'states';
    for (const tab of Array.from(this._tabs.children) as HTMLElement[]) {
      tab.classList.toggle('jp-mod-current', tab.dataset.view === this._view);
      tab.setAttribute('aria-selected', String(tab.dataset.view === this._view));
    }
    this._help.textContent = states
      ? 'Click a cell to go back to the state after it. Tick two to compare them.'
      : 'Click a variable to see its versions; restore one without touching the others.';
    this._diff.hidden = !states;
    this._list.hidden = !states;
    this._variables.node.hidden = states;
    this._variables.update(!states && ready ? session : null);

    this._list.replaceChildren();
    if (!ready || !session) {
      return;
    }
    const headId = session.head?.id ?? null;
    for (const row of layoutTree(session.commits, headId)) {
      this._list.append(this._renderCommit(row, row.commit.id === headId, busy));
    }
  }

  private _renderCommit(tree: ITreeRow, isHead: boolean, busy: boolean): HTMLElement {
    const { commit, onHeadPath } = tree;
    const row = document.createElement('div');
    row.className = 'jp-TimeTravel-commit';
    row.setAttribute('role', 'listitem');
    row.dataset.commitId = commit.id;
    row.dataset.executionCount = commit.execution_count === null ? '' : String(commit.execution_count);
    row.classList.toggle('jp-mod-head', isHead);
    row.classList.toggle('jp-mod-offpath', !onHeadPath);
    row.classList.toggle('jp-mod-error', commit.status === 'error');
    row.title = `${isHead ? 'Current state' : 'Click to go back to this state'}\n\n${commit.code}`;

    const graph = renderGraph(tree);

    const body = document.createElement('div');
    body.className = 'jp-TimeTravel-body';
    const first = document.createElement('div');
    first.className = 'jp-TimeTravel-line';
    const count = document.createElement('span');
    count.className = 'jp-TimeTravel-count';
    // A state made by restoring one variable (`get`) has no cell of its own.
    count.textContent =
      commit.parent === null ? 'start' : commit.execution_count === null ? 'restore' : `[${commit.execution_count}]`;
    const code = document.createElement('code');
    code.className = 'jp-TimeTravel-code';
    code.textContent = commit.parent === null ? 'fresh kernel' : codeSummary(commit.code);
    first.append(count, code);
    if (isHead) {
      const badge = document.createElement('span');
      badge.className = 'jp-TimeTravel-headBadge';
      badge.textContent = 'HEAD';
      first.append(badge);
    }

    const meta = document.createElement('div');
    meta.className = 'jp-TimeTravel-meta';
    meta.textContent =
      commit.parent === null
        ? `the kernel's first state · ${shortId(commit.id)}`
        : `${formatTime(commit.time)} · ${commit.cells > 1 ? `${commit.cells} cells · ` : ''}` +
          `ran ${formatDuration(commit.duration)} · ` +
          `${formatBytes(commit.bytes_written)} written · ${shortId(commit.id)}`;

    const changed = document.createElement('div');
    changed.className = 'jp-TimeTravel-changed';
    for (const name of commit.changed.slice(0, 12)) {
      const chip = document.createElement('span');
      chip.className = 'jp-TimeTravel-var';
      chip.textContent = name;
      changed.append(chip);
    }
    if (commit.changed.length > 12) {
      changed.append(` +${commit.changed.length - 12}`);
    }
    body.append(first, meta, changed);

    const compare = document.createElement('input');
    compare.type = 'checkbox';
    compare.className = 'jp-TimeTravel-compare';
    compare.title = 'Tick two states to compare them';
    compare.checked = this._selected.includes(commit.id);
    compare.addEventListener('click', event => {
      event.stopPropagation();
      this._toggleSelected(commit.id, compare.checked);
    });

    row.append(graph, body, compare);
    if (!isHead && !busy) {
      row.classList.add('jp-mod-clickable');
      row.tabIndex = 0;
      row.addEventListener('click', () => this._run(s => s.checkout(commit.id)));
      row.addEventListener('keydown', event => {
        if (event.key === 'Enter' && event.target === row) {
          void this._run(s => s.checkout(commit.id));
        }
      });
    }
    return row;
  }

  private _toggleSelected(id: string, on: boolean): void {
    this._selected = this._selected.filter(s => s !== id);
    if (on) {
      this._selected.push(id);
    }
    if (this._selected.length > 2) {
      this._selected = this._selected.slice(-2);
    }
    this._render();
    if (this._selected.length === 2) {
      void this._showDiff(this._selected[0], this._selected[1]);
    } else {
      this._diff.textContent = '';
    }
  }

  /** Diff from the older of the two to the newer, as the user reads it. */
  private async _showDiff(first: string, second: string): Promise<void> {
    const session = this._session;
    if (!session) {
      return;
    }
    const byId = new Map(session.commits.map(c => [c.id, c]));
    let [a, b] = [byId.get(first), byId.get(second)];
    if (a && b && a.time > b.time) {
      [a, b] = [b, a];
    }
    const aId = a?.id ?? first;
    const bId = b?.id ?? second;
    this._diff.textContent = 'Comparing…';
    try {
      const diff = await session.diff(aId, bId);
      if (this._session !== session) {
        return;
      }
      this._diff.replaceChildren();
      const title = document.createElement('div');
      title.className = 'jp-TimeTravel-diffTitle';
      title.textContent = `From ${describeCommit(a)} to ${describeCommit(b)}`;
      this._diff.append(title);
      const rows: [string, string[]][] = [
        ['added', diff.added],
        ['changed', diff.changed],
        ['deleted', diff.deleted]
      ];
      for (const [label, names] of rows) {
        const line = document.createElement('div');
        line.className = `jp-TimeTravel-diff-${label}`;
        line.textContent = `${label}: ${names.length ? listNames(names, 20) : '—'}`;
        this._diff.append(line);
      }
      for (const name of diff.changed) {
        const text = diff.values?.[name];
        if (text) {
          const line = document.createElement('div');
          line.className = 'jp-TimeTravel-diff-value';
          line.dataset.name = name;
          const label = document.createElement('code');
          label.textContent = name;
          line.append(label, `: ${text}`);
          this._diff.append(line);
        }
      }
    } catch (err) {
      this._diff.textContent = `Could not compare: ${(err as Error).message}`;
    }
  }

  private async _run(op: (session: TimeTravelSession) => Promise<any>): Promise<void> {
    const session = this._session;
    if (!session) {
      return;
    }
    this._message.textContent = '';
    try {
      const result = await op(session);
      this._message.textContent = summarizeCheckout(result);
    } catch (err) {
      this._message.textContent = (err as Error).message;
      Notification.warning((err as Error).message, { autoClose: 5000 });
    }
  }

  private _button(label: string, className: string, onClick: () => void): HTMLButtonElement {
    const button = document.createElement('button');
    button.className = `jp-Button jp-mod-styled jp-mod-reject ${className}`;
    button.textContent = label;
    button.addEventListener('click', onClick);
    return button;
  }

  private _registry: SessionRegistry;
  private _session: TimeTravelSession | null = null;
  private _selected: string[] = [];
  private _view: View = 'states';
  private _variables: VariablesView;
  private _tabs = document.createElement('div');
  private _help = document.createElement('div');
  private _summary = document.createElement('div');
  private _hint = document.createElement('div');
  private _message = document.createElement('div');
  private _diff = document.createElement('div');
  private _list = document.createElement('div');
  private _undoButton: HTMLButtonElement;
  private _redoButton: HTMLButtonElement;
  private _refreshButton: HTMLButtonElement;
}
