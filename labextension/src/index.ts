/**
 * The JupyterLab / Notebook 7 plugin: commands, shortcuts, toolbar buttons
 * (declared in schema/plugin.json), the History panel, the status-bar item
 * and the notifications about restores.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import {
  describeCommit,
  formatTime,
  listNames,
  rebuildCode,
  summarizeCheckout,
  summarizeRebuild,
  summarizeRebuildPlan
} from './format';
import { redoStateIcon, undoStateIcon } from './icons';
import { HistoryPanel } from './panel';
import { ProtocolError, type ICheckoutResult } from './protocol';
import { SessionRegistry } from './registry';
import { TimeTravelStatus } from './statusbar';
import type { ISessionOptions, Notice, TimeTravelSession } from './session';

const PLUGIN_ID = 'timetravel-labextension:plugin';

/** Command ids; the shortcuts and toolbar items in schema/plugin.json name them. */
export namespace CommandIDs {
  export const undo = 'timetravel:undo';
  export const redo = 'timetravel:redo';
  export const showHistory = 'timetravel:show-history';
  export const restore = 'timetravel:restore';
}

/** Used until the settings load, and when there is no setting registry. */
const DEFAULT_OPTIONS: ISessionOptions = {
  kernelNames: ['timetravel', 'python3-timetravel'],
  historyLimit: 200
};

/** Words for the protocol errors a user meets by pressing undo or redo. */
function explainError(op: string, err: unknown): { text: string; level: 'info' | 'warning' | 'error' } {
  const code = err instanceof ProtocolError ? err.code : '';
  switch (code) {
    case 'nothing-to-undo':
      return { text: 'Nothing to undo: this is the first state of the session.', level: 'info' };
    case 'nothing-to-redo':
      return { text: 'Nothing to redo: no undone cell follows this state.', level: 'info' };
    case 'busy':
      return { text: `A cell is running: wait for it to finish, then ${op} again.`, level: 'warning' };
    case 'not-ready':
      return { text: (err as Error).message, level: 'warning' };
    default:
      return { text: `Time travel ${op} failed: ${(err as Error).message}`, level: 'error' };
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Undo/redo cell state, a history panel and restore prompts for the Python 3 (time-travel) kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IStatusBar, ISettingRegistry, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const options: ISessionOptions = { ...DEFAULT_OPTIONS };
    const registry = new SessionRegistry(tracker, options);
    const { commands } = app;

    const panel = new HistoryPanel(registry);
    panel.title.caption = 'Cell-state history';
    app.shell.add(panel, 'left', { rank: 850 });
    restorer?.add(panel, 'timetravel-history');

    const canMove = (): boolean => {
      const session = registry.current;
      return !!session && session.isReady && !session.pendingOp;
    };
    const disabledCaption = (what: string): string =>
      canMove() ? what : `${what}. Unavailable: ${registry.currentHint || 'an operation is running.'}`;

    const move = async (op: 'undo' | 'redo' | 'restore', session: TimeTravelSession | null): Promise<void> => {
      if (!session) {
        Notification.warning(registry.currentHint, { autoClose: 5000 });
        return;
      }
      try {
        const result = await session[op]();
        Notification.info(summarizeCheckout(result), { autoClose: 3000 });
      } catch (err) {
        const { text, level } = explainError(op, err);
        Notification[level](text, { autoClose: level === 'error' ? false : 5000 });
      }
    };

    commands.addCommand(CommandIDs.undo, {
      label: 'Undo cell state',
      caption: () => disabledCaption('Undo the last cell’s effect on the variables'),
      icon: undoStateIcon,
      isEnabled: canMove,
      execute: () => move('undo', registry.current)
    });
    commands.addCommand(CommandIDs.redo, {
      label: 'Redo cell state',
      caption: () => disabledCaption('Redo the cell state last undone'),
      icon: redoStateIcon,
      isEnabled: canMove,
      execute: () => move('redo', registry.current)
    });
    commands.addCommand(CommandIDs.restore, {
      label: 'Restore the previous session’s state',
      caption: () => disabledCaption('Load the state the notebook had before the kernel restarted'),
      isEnabled: () => canMove() && !!registry.current?.status?.restorable,
      execute: () => move('restore', registry.current)
    });
    commands.addCommand(CommandIDs.showHistory, {
      label: 'Show cell-state history',
      caption: 'Open the time-travel History panel',
      execute: () => app.shell.activateById(panel.id)
    });

    if (palette) {
      const category = 'Time Travel';
      for (const command of [CommandIDs.undo, CommandIDs.redo, CommandIDs.showHistory, CommandIDs.restore]) {
        palette.addItem({ command, category });
      }
    }

    if (statusBar) {
      // Notebook 7 has no status bar: the item exists only where one does.
      const item = new TimeTravelStatus(registry, () => app.shell.activateById(panel.id));
      statusBar.registerStatusItem('timetravel-labextension:status', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => item.isActive,
        activeStateChanged: registry.changed
      });
    }

    registry.changed.connect(() => {
      commands.notifyCommandChanged(CommandIDs.undo);
      commands.notifyCommandChanged(CommandIDs.redo);
      commands.notifyCommandChanged(CommandIDs.restore);
    });

    registry.notice.connect((_, { panel: notebook, notice }) => showNotice(notebook, notice, registry, app, panel));

    if (settingRegistry) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = (): void => {
            const names = settings.get('kernelNames').composite as string[] | undefined;
            const limit = settings.get('historyLimit').composite as number | undefined;
            options.kernelNames = names?.length ? names : DEFAULT_OPTIONS.kernelNames;
            options.historyLimit = limit && limit > 0 ? limit : DEFAULT_OPTIONS.historyLimit;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.error('timetravel: could not load settings', reason));
    }
  }
};

/** Turn a session notice into a notification. */
function showNotice(
  notebook: NotebookPanel,
  notice: Notice,
  registry: SessionRegistry,
  app: JupyterFrontEnd,
  panel: HistoryPanel
): void {
  const name = notebook.context.localPath.split('/').pop() ?? 'this notebook';
  const openHistory = { label: 'Show history', callback: () => app.shell.activateById(panel.id) };
  switch (notice.kind) {
    case 'restored': {
      const what = notice.crashed ? 'crashed and restarted' : 'restarted';
      const lines = [`The kernel of ${name} ${what}: the state after ${describeCommit(notice.head)} is back.`];
      if (notice.restored.length) {
        lines.push(`Restored: ${listNames(notice.restored, 8)}.`);
      }
      const lost = Object.keys(notice.unrestored);
      if (lost.length) {
        lines.push(`Not restored: ${listNames(lost, 8)} (re-run the cells that made them).`);
      }
      Notification.success(lines.join(' '), { autoClose: false, actions: [openHistory] });
      break;
    }
    case 'restore-available': {
      const when = notice.commit ? ` from ${formatTime(notice.commit.time)}` : '';
      const what = notice.commit ? ` (after ${describeCommit(notice.commit)}${when})` : '';
      Notification.info(`The kernel of ${name} started empty. Its previous state${what} can be restored.`, {
        autoClose: false,
        actions: [
          {
            label: 'Restore',
            displayType: 'accent',
            callback: () => {
              const session = registry.sessionFor(notebook);
              if (!session) {
                return;
              }
              session.restore().then(
                (result: ICheckoutResult) => Notification.success(summarizeCheckout(result), { autoClose: 6000 }),
                (err: unknown) => Notification.error(explainError('restore', err).text, { autoClose: false })
              );
            }
          },
          openHistory
        ]
      });
      break;
    }
    case 'rebuild-available': {
      const rebuild = (): void => {
        const session = registry.sessionFor(notebook);
        session?.rebuild(notice.plan.names).then(
          result =>
            Notification[Object.keys(result.failed).length ? 'warning' : 'success'](summarizeRebuild(result), {
              autoClose: false
            }),
          (err: unknown) => Notification.error(explainError('rebuild', err).text, { autoClose: false })
        );
      };
      Notification.info(`${name}: ${summarizeRebuildPlan(notice.plan)}`, {
        autoClose: false,
        actions: [
          { label: 'Rebuild', displayType: 'accent', callback: rebuild },
          { label: 'Show code', callback: () => void showRebuildCode(notice.plan.names, rebuildCode(notice.plan), rebuild) }
        ]
      });
      break;
    }
    case 'warning':
      Notification.warning(`${name}: ${notice.message}`, { autoClose: 8000 });
      break;
  }
}

/** Show the cells a rebuild would run; rebuild if the user says so. */
async function showRebuildCode(names: string[], code: string, rebuild: () => void): Promise<void> {
  const body = new Widget({ node: document.createElement('pre') });
  body.addClass('jp-timetravel-rebuild-code');
  body.node.textContent = code;
  const answer = await showDialog({
    title: `Rebuild ${listNames(names, 8)}`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Rebuild' })]
  });
  if (answer.button.accept) {
    rebuild();
  }
}

export default plugin;
