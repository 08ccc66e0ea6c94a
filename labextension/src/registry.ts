/**
 * One TimeTravelSession per open notebook, and "the current one" for the
 * commands, the panel and the status bar (the active notebook in JupyterLab,
 * the only notebook in Notebook 7).
 */
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { ISessionOptions, Notice, TimeTravelSession } from './session';

export class SessionRegistry {
  constructor(tracker: INotebookTracker, options: ISessionOptions) {
    this._tracker = tracker;
    this._options = options;
    tracker.widgetAdded.connect((_, panel) => this._add(panel));
    tracker.currentChanged.connect(() => this._changed.emit());
    tracker.forEach(panel => this._add(panel));
  }

  /** Emitted when the current notebook changes or its session changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Notices of every session, with the notebook they are about. */
  get notice(): ISignal<this, { panel: NotebookPanel; notice: Notice }> {
    return this._notice;
  }

  get currentPanel(): NotebookPanel | null {
    return this._tracker.currentWidget;
  }

  get current(): TimeTravelSession | null {
    const panel = this._tracker.currentWidget;
    return panel ? (this._sessions.get(panel) ?? null) : null;
  }

  /** Why the current notebook cannot time-travel ('' when it can). */
  get currentHint(): string {
    const session = this.current;
    if (!session) {
      return 'Open a notebook that runs the "Python 3 (time-travel)" kernel.';
    }
    return session.hint;
  }

  sessionFor(panel: NotebookPanel): TimeTravelSession | null {
    return this._sessions.get(panel) ?? null;
  }

  private _add(panel: NotebookPanel): void {
    if (this._sessions.has(panel)) {
      return;
    }
    const session = new TimeTravelSession(panel.sessionContext, this._options);
    this._sessions.set(panel, session);
    session.changed.connect(() => {
      if (this._tracker.currentWidget === panel) {
        this._changed.emit();
      }
    });
    session.notice.connect((_, notice) => this._notice.emit({ panel, notice }));
    panel.disposed.connect(() => {
      this._sessions.delete(panel);
      session.dispose();
      this._changed.emit();
    });
    this._changed.emit();
  }

  private _tracker: INotebookTracker;
  private _options: ISessionOptions;
  private _sessions = new Map<NotebookPanel, TimeTravelSession>();
  private _changed = new Signal<this, void>(this);
  private _notice = new Signal<this, { panel: NotebookPanel; notice: Notice }>(this);
}
