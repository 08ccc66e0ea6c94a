/**
 * The status-bar item: where HEAD is, how big the store is, when the last
 * checkpoint was taken, and "saving" while a cell's state is not durable yet.
 * Clicking it opens the History panel.
 */
import { Widget } from '@lumino/widgets';

import { formatAgo, formatStoreSize, shortId } from './format';
import type { SessionRegistry } from './registry';

/** Re-render the "… ago" text this often. */
const TICK_MS = 10_000;

export class TimeTravelStatus extends Widget {
  constructor(registry: SessionRegistry, onClick: () => void) {
    super();
    this._registry = registry;
    this.addClass('jp-TimeTravel-status');
    this.node.title = 'Time travel: click to open the history';
    this.node.addEventListener('click', onClick);
    registry.changed.connect(this._render, this);
    this._timer = setInterval(() => this._render(), TICK_MS);
    this._render();
  }

  /** Shown only for notebooks; the text itself says when time travel is off. */
  get isActive(): boolean {
    return this._registry.currentPanel !== null;
  }

  dispose(): void {
    clearInterval(this._timer);
    this._registry.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const session = this._registry.current;
    const status = session?.status;
    this.toggleClass('jp-mod-disabled', !session?.isReady);
    if (!session || !session.isReady || !status) {
      this.node.textContent = session?.state === 'connecting' || session?.state === 'restarting'
        ? 'Time travel: connecting…'
        : 'Time travel: off';
      this.node.title = this._registry.currentHint || 'Time travel is not available for this notebook.';
      return;
    }
    const head = status.head;
    const where = !head ? 'none' : head.parent === null ? 'start' : `[${head.execution_count ?? ' '}]`;
    const last = session.lastCheckpoint;
    const parts = [
      `Time travel: HEAD ${where} ${shortId(head?.id)}`,
      `${formatStoreSize(status.store)} stored`,
      last ? `last saved ${formatAgo(last.time)}` : 'no cell saved yet'
    ];
    if (session.saving > 0) {
      parts.push(session.saving === 1 ? 'saving…' : `saving ${session.saving} states…`);
    }
    if (session.pendingOp) {
      parts.push(`${session.pendingOp}…`);
    }
    this.node.textContent = parts.join(' · ');
    this.toggleClass('jp-mod-saving', session.saving > 0);
    const saving = session.saving > 0
      ? ` ${session.saving} more being saved (not durable until saved).`
      : '';
    this.node.title =
      `Time travel: ${status.commits} states in ${status.store.path}.${saving} Click to open the history.`;
  }

  private _registry: SessionRegistry;
  private _timer: ReturnType<typeof setInterval>;
}
