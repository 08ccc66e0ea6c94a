/**
 * The extension's icons, as LabIcons so they follow the theme colours.
 */
import { LabIcon } from '@jupyterlab/ui-components';

const HISTORY_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M13 3a9 9 0 0 0-9 9H1l3.9 3.9.1.1L9 12H6a7 7 0 1 1 2.05 4.95l-1.42 1.42A9 9 0 1 0 13 3zm-1 5v5l4.25 2.52.77-1.28-3.52-2.09V8H12z"/>
</svg>`;

const UNDO_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M12.5 8c-2.65 0-5.05 1-6.9 2.6L2 7v9h9l-3.62-3.62A7.95 7.95 0 0 1 12.5 10.5c3.54 0 6.55 2.31 7.6 5.5l2.37-.78A10.52 10.52 0 0 0 12.5 8z"/>
  <circle class="jp-icon3" fill="#616161" cx="19" cy="5" r="2.2"/>
</svg>`;

const REDO_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M18.4 10.6A10.46 10.46 0 0 0 11.5 8 10.52 10.52 0 0 0 1.53 15.22l2.37.78A7.98 7.98 0 0 1 11.5 10.5c1.95 0 3.73.72 5.12 1.88L13 16h9V7l-3.6 3.6z"/>
  <circle class="jp-icon3" fill="#616161" cx="5" cy="5" r="2.2"/>
</svg>`;

export const historyIcon = new LabIcon({ name: 'timetravel:history', svgstr: HISTORY_SVG });
export const undoStateIcon = new LabIcon({ name: 'timetravel:undo', svgstr: UNDO_SVG });
export const redoStateIcon = new LabIcon({ name: 'timetravel:redo', svgstr: REDO_SVG });
