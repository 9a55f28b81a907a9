// The device page's figures: telemetry history as charts, and the latest telemetry as tables.
import type { DeviceDetail } from '../../../shared/fleet/api.ts';
import { lineChart } from './chart.ts';
import { h } from './dom.ts';
import { bytes, duration, num, percent } from './format.ts';
import { keyValues, table } from './ui.ts';

export function telemetryCharts(d: DeviceDetail): HTMLElement {
  const pts = d.history.map((p) => ({ ...p, x: Date.parse(p.at) })).filter((p) => Number.isFinite(p.x));
  return h(
    'div',
    { class: 'charts' },
    lineChart({
      title: 'CPU, memory and disk (%)',
      yMin: 0,
      yMax: 100,
      format: (v) => percent(v),
      series: [
        { name: 'CPU', points: pts.map((p) => ({ x: p.x, y: p.cpu })) },
        { name: 'Memory', points: pts.map((p) => ({ x: p.x, y: p.mem })) },
        { name: 'Disk', points: pts.map((p) => ({ x: p.x, y: p.disk })) },
      ],
    }),
    lineChart({
      title: 'Upload queue (instances)',
      yMin: 0,
      format: (v) => num(v),
      series: [{ name: 'Queue depth', points: pts.map((p) => ({ x: p.x, y: p.queue })) }],
    }),
    lineChart({
      title: 'Oldest queued instance (age)',
      yMin: 0,
      format: (v) => duration(v),
      series: [{ name: 'Oldest queued', points: pts.map((p) => ({ x: p.x, y: p.oldestQueuedAgeS })) }],
    }),
  );
}

export function pipelineFigures(d: DeviceDetail): HTMLElement {
  const t = d.telemetry;
  if (!t) return h('p', { class: 'muted' }, 'No telemetry received yet.');
  const p = t.pipeline;
  const sys = t.system;
  const states = Object.entries(p.byState).sort(([a], [b]) => a.localeCompare(b));
  return h(
    'div',
    { class: 'columns' },
    h(
      'div',
      null,
      h('h3', null, 'Pipeline'),
      keyValues([
        ['Received', num(p.received)],
        ['Committed', num(p.committed)],
        ['Held by the filter', num(p.held)],
        ['Dead letters', h('span', { class: p.deadLetter > 0 ? 'warn-text' : '' }, num(p.deadLetter))],
        ['Queue depth', num(p.queueDepth)],
        ['Oldest queued', duration(p.oldestQueuedAgeS)],
        ['Sent since start', bytes(p.bytesOut)],
        ['Disk accepting', p.diskAccepting ? 'yes' : h('span', { class: 'warn-text' }, 'no — refusing new studies')],
        ['Last error', p.lastError ?? '—'],
      ]),
      table('Instances by state', ['State', 'Instances'], states.map(([state, n]) => [state, num(n)]), 'No instances.'),
    ),
    h(
      'div',
      null,
      h('h3', null, 'Host'),
      keyValues([
        ['CPU load', percent(sys.cpuLoadPercent)],
        ['Memory', sys.memUsedBytes !== null && sys.memTotalBytes ? `${bytes(sys.memUsedBytes)} of ${bytes(sys.memTotalBytes)}` : '—'],
        ['Disk', `${percent(sys.diskUsedPercent)} (${bytes(sys.diskUsedBytes)} of ${bytes(sys.diskTotalBytes)})`],
        ['Network in / out', `${bytes(sys.netRxBytesPerSec)}/s / ${bytes(sys.netTxBytesPerSec)}/s`],
        ['CPU temperature', sys.cpuTempC === null ? '—' : `${sys.cpuTempC.toFixed(0)} °C`],
        ['OS uptime', duration(sys.osUptimeS)],
        ['Agent uptime', duration(t.uptimeS)],
        ['Telemetry', `#${t.seq} at ${t.at}`],
      ]),
      h('h3', null, 'Today and yesterday'),
      table(
        'Daily figures',
        ['Day', 'Modality', 'Studies', 'Instances', 'Received', 'Sent', 'Filtered'],
        t.daily.map((f) => [f.day, f.modality, num(f.studies), num(f.instances), bytes(f.bytesReceived), bytes(f.bytesSent), bytes(f.bytesFiltered)]),
        'No studies today or yesterday.',
      ),
    ),
  );
}
