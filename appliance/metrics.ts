// Prometheus metrics of the box. One registry per running appliance so tests can run several.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'mbox_' });
  return {
    registry,
    associations: new Counter({
      name: 'mbox_dicom_associations_total',
      help: 'DICOM associations by result',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    activeAssociations: new Gauge({ name: 'mbox_dicom_associations_active', help: 'Open DICOM connections', registers: [registry] }),
    objects: new Counter({
      name: 'mbox_ingest_objects_total',
      help: 'Objects offered to the box, by way in and outcome (stored, duplicate, conflict, refused, aborted)',
      labelNames: ['via', 'outcome'] as const,
      registers: [registry],
    }),
    bytes: new Counter({ name: 'mbox_ingest_bytes_total', help: 'Bytes stored', labelNames: ['via'] as const, registers: [registry] }),
    storeSeconds: new Histogram({
      name: 'mbox_ingest_store_seconds',
      help: 'Moving a written object into the store and syncing its index entry',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    diskFreeBytes: new Gauge({ name: 'mbox_disk_free_bytes', help: 'Free bytes on the data volume', registers: [registry] }),
    diskOk: new Gauge({ name: 'mbox_disk_accepting', help: '1 while below the high-water mark', registers: [registry] }),
    instancesByState: new Gauge({
      name: 'mbox_store_instances',
      help: 'Instances in the store by state',
      labelNames: ['state'] as const,
      registers: [registry],
    }),
    uplinkBytes: new Counter({ name: 'mbox_uplink_bytes_total', help: 'Bytes sent per destination', labelNames: ['destination'] as const, registers: [registry] }),
    uplinkInstances: new Counter({
      name: 'mbox_uplink_instances_total',
      help: 'Delivery outcomes per destination (committed, retry, dead-letter)',
      labelNames: ['destination', 'result'] as const,
      registers: [registry],
    }),
    watchPending: new Gauge({ name: 'mbox_watch_pending_files', help: 'Files seen in watch folders, not yet settled', registers: [registry] }),
  };
}

export type ApplianceMetrics = ReturnType<typeof createMetrics>;
