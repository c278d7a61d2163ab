// The workload panel of an experiment page: what the workload's paper plots, drawn from the
// analysis endpoint by the workload's own module (panels/<workload>.js). One line per workload.

import { api } from './common.js';
import * as aioli from './panels/aioli.js';
import * as stability from './panels/stability.js';

const PANELS = { aioli, stability };

/** True when the workload has a panel. */
export function hasPanel(workload) {
  return Object.hasOwn(PANELS, workload);
}

export async function renderPanel(target, expId, workload) {
  const analysis = await api(`/api/v1/experiments/${expId}/analysis`);
  PANELS[workload].render(target, analysis);
}
