/**
 * The History panel's Variables view: every name the current state has; click
 * one to list the versions it had, and bring one back in place ("Restore this
 * version") or beside it ("Restore as…"). Each restore is one `get` request:
 * the kernel touches no other name and records it as a new state, so Undo
 * takes it back.
 */
import { InputDialog, Notification } from '@jupyterlab/apputils';

import { codeSummary, formatBytes, formatTime, listNames, shortId } from './format';
import type { ICommit, IVarInfo, IVersionInfo } from './protocol';
import type { TimeTravelSession } from './session';

/** How a version's cell is labelled: `[3]`, `start`, or `restore` for a `get`. */
function cellLabel(commit: ICommit): string {
  if (commit.parent === null) {
    return 'start';
  }
  return commit.execution_count === null ? 'restore' : `[${commit.execution_count}]`;
}

export class VariablesView {
  /** The view's root element, which the panel shows or hides. */
  readonly node = document.createElement('div');

  /**
   * @param report - shows one sentence (a result or an error) in the panel.
   */
  constructor(report: (text: string) => void) {
    this._report = report;
    this.node.className = 'jp-TimeTravel-variables';
    this.node.setAttribute('role', 'list');
  }

  /** Follow another notebook's session (or none); reloads when its HEAD moved. */
  update(session: TimeTravelSession | null): void {
    const head = session?.isReady ? (session.head?.id ?? null) : null;
    if (session === this._session && head === this._head) {
      return;
    }
    if (session !== this._session) {
      this._open = null;
    }
    this._session = session;
    this._head = head;
    void this._load();
  }

  private async _load(): Promise<void> {
    const session = this._session;
    if (!session || !session.isReady) {
      this.node.replaceChildren();
      return;
    }
    let vars: IVarInfo[];
    let versions: IVersionInfo[] = [];
    try {
      vars = await session.vars();
      if (this._open && vars.some(v => v.name === this._open)) {
        versions = await session.history(this._open);
      }
    } catch (err) {
      this.node.textContent = `Could not list the variables: ${(err as Error).message}`;
      return;
    }
    if (session !== this._session) {
      return;
    }
    this.node.replaceChildren();
    if (!vars.length) {
      const empty = document.createElement('div');
      empty.className = 'jp-TimeTravel-help';
      empty.textContent = 'No saved variables yet.';
      this.node.append(empty);
    }
    for (const info of vars) {
      this.node.append(this._renderName(info, info.name === this._open ? versions : null));
    }
  }

  private _renderName(info: IVarInfo, versions: IVersionInfo[] | null): HTMLElement {
    const item = document.createElement('div');
    item.className = 'jp-TimeTravel-varItem';
    item.setAttribute('role', 'listitem');
    item.dataset.name = info.name;
    const row = document.createElement('div');
    row.className = 'jp-TimeTravel-varRow jp-mod-clickable';
    row.tabIndex = 0;
    row.title = versions ? 'Hide the versions' : 'Show the versions this variable had';
    const name = document.createElement('code');
    name.className = 'jp-TimeTravel-varName';
    name.textContent = info.name;
    const meta = document.createElement('span');
    meta.className = 'jp-TimeTravel-meta';
    meta.textContent = info.saved ? `${info.type} · ${formatBytes(info.bytes)}` : `${info.type} · not saved`;
    row.append(name, meta);
    const toggle = (): void => {
      this._open = versions ? null : info.name;
      void this._load();
    };
    row.addEventListener('click', toggle);
    row.addEventListener('keydown', event => {
      if (event.key === 'Enter' && event.target === row) {
        toggle();
      }
    });
    item.append(row);
    if (versions) {
      const list = document.createElement('div');
      list.className = 'jp-TimeTravel-versions';
      for (const version of versions) {
        list.append(this._renderVersion(info.name, version));
      }
      item.append(list);
    }
    return item;
  }

  private _renderVersion(name: string, version: IVersionInfo): HTMLElement {
    const { commit } = version;
    const row = document.createElement('div');
    row.className = 'jp-TimeTravel-version';
    row.dataset.commitId = commit.id;
    row.dataset.executionCount = commit.execution_count === null ? '' : String(commit.execution_count);
    row.classList.toggle('jp-mod-head', version.current);
    const line = document.createElement('div');
    line.className = 'jp-TimeTravel-line';
    const count = document.createElement('span');
    count.className = 'jp-TimeTravel-count';
    count.textContent = cellLabel(commit);
    const code = document.createElement('code');
    code.className = 'jp-TimeTravel-code';
    code.textContent = commit.parent === null ? 'fresh kernel' : codeSummary(commit.code, 40);
    code.title = commit.code;
    line.append(count, code);
    if (version.current) {
      const badge = document.createElement('span');
      badge.className = 'jp-TimeTravel-headBadge';
      badge.textContent = 'current';
      badge.title = 'The variable has this version now';
      line.append(badge);
    }
    const meta = document.createElement('div');
    meta.className = 'jp-TimeTravel-meta';
    const others = version.members.filter(m => m !== name);
    meta.textContent =
      version.covariable === null
        ? `deleted · ${formatTime(commit.time)} · ${shortId(commit.id)}`
        : `${version.type} · ${formatBytes(version.bytes)} · ${formatTime(commit.time)} · ${shortId(commit.id)}` +
          (others.length ? ` · shares objects with ${listNames(others)}` : '') +
          (version.saved ? '' : ` · not saved: ${version.reason ?? ''}`);
    row.append(line, meta);
    if (version.covariable !== null && version.saved) {
      row.append(this._renderButtons(name, version, others));
    }
    return row;
  }

  private _renderButtons(name: string, version: IVersionInfo, others: string[]): HTMLElement {
    const buttons = document.createElement('div');
    buttons.className = 'jp-TimeTravel-versionButtons';
    const together = others.length > 0;
    const restore = this._button(
      together ? `Restore with ${listNames(others, 3)}` : 'Restore this version',
      'jp-TimeTravel-restoreVersion',
      () => this._restore(name, version, { together })
    );
    restore.disabled = version.current;
    restore.title = together
      ? `${name} shares objects with ${listNames(others)}: they come back together, each under its own name`
      : `Put this version of ${name} back; nothing else changes (Undo takes it back)`;
    buttons.append(restore);
    if (!together) {
      const restoreAs = this._button('Restore as…', 'jp-TimeTravel-restoreAs', () => void this._restoreAs(name, version));
      restoreAs.title = `Put this version of ${name} under a new name, beside the current one`;
      buttons.append(restoreAs);
    }
    return buttons;
  }

  private async _restoreAs(name: string, version: IVersionInfo): Promise<void> {
    const answer = await InputDialog.getText({
      title: `Restore ${name} as…`,
      label: `A new name for ${name} as it was after ${cellLabel(version.commit)}`,
      text: `${name}_${cellLabel(version.commit).replace(/\W/g, '') || 'old'}`,
      okLabel: 'Restore'
    });
    if (answer.button.accept && answer.value) {
      await this._restore(name, version, { asName: answer.value.trim() });
    }
  }

  private async _restore(
    name: string,
    version: IVersionInfo,
    options: { asName?: string; together?: boolean }
  ): Promise<void> {
    const session = this._session;
    if (!session) {
      return;
    }
    try {
      const result = await session.restoreVariable(name, version.commit.id, options);
      const what = options.asName ? `${name} as ${options.asName}` : listNames(result.loaded);
      this._report(
        `Restored ${what} from ${cellLabel(version.commit)} ` +
          `${codeSummary(version.commit.code, 30)}; Undo takes it back`
      );
    } catch (err) {
      this._report((err as Error).message);
      Notification.warning((err as Error).message, { autoClose: 5000 });
    }
  }

  private _button(label: string, className: string, onClick: () => void): HTMLButtonElement {
    const button = document.createElement('button');
    button.className = `jp-Button jp-mod-styled jp-mod-reject ${className}`;
    button.textContent = label;
    button.addEventListener('click', event => {
      event.stopPropagation();
      onClick();
    });
    return button;
  }

  private _report: (text: string) => void;
  private _session: TimeTravelSession | null = null;
  private _head: string | null = null;
  private _open: string | null = null;
}
