// The broker ACL rules per identity and topic kind, with the edge cases an attacker would try.
import { describe, expect, it } from 'vitest';
import { identityKind, MAX_TOPIC_LENGTH, mayPublish, mayReceive, maySubscribe, mayWill } from '../../../../shared/fleet/acl.ts';
import { FLEET_SERVICE_IDENTITY, topics } from '../../../../shared/fleet/topics.ts';

const A = 'mb-aaaa1111';
const B = 'mb-bbbb2222';
const FLEET = FLEET_SERVICE_IDENTITY;

describe('identityKind', () => {
  it('knows devices and the fleet service, nothing else', () => {
    expect(identityKind(A)).toBe('device');
    expect(identityKind(FLEET)).toBe('fleet');
    for (const cn of ['', 'MB-AAAA1111', 'mb-aaa', 'localhost', 'mb-aaaa1111 ', 'mb-aaaa/1111', 'mb-+', 'Fleet-Service', 'fleet-service\u0000']) {
      expect(identityKind(cn), cn).toBeUndefined();
    }
  });
});

describe('device publish', () => {
  it('may publish exactly its own outbound kinds', () => {
    for (const t of [topics.status(A), topics.telemetry(A), topics.reported(A), topics.commandResponse(A)]) expect(mayPublish(A, t), t).toBe(true);
  });

  it('may not forge what the fleet sends it', () => {
    expect(mayPublish(A, topics.desired(A))).toBe(false);
    expect(mayPublish(A, topics.commandRequest(A))).toBe(false);
  });

  it("may not touch another device's tree", () => {
    for (const t of [topics.status(B), topics.telemetry(B), topics.reported(B), topics.commandResponse(B)]) expect(mayPublish(A, t), t).toBe(false);
  });

  it('refuses near misses', () => {
    const bad = [
      `mbox/${A}`,
      `mbox/${A}/`,
      `mbox/${A}/status/`,
      `mbox/${A}/status/x`,
      `mbox/${A}//status`,
      `mbox/${A.toUpperCase()}/status`,
      `MBOX/${A}/status`,
      `/mbox/${A}/status`,
      `mbox/${A}1/status`,
      `mbox/mb-aaaa/status`,
      `mbox/${A}/config`,
      `mbox/${A}/commands`,
      `mbox/${A}/status\u0000`,
      `mbox/${A}/+`,
      `mbox/${A}/#`,
      `$SYS/broker/status`,
      '',
    ];
    for (const t of bad) expect(mayPublish(A, t), JSON.stringify(t)).toBe(false);
  });

  it('refuses an identity that is not a device id even on a matching topic', () => {
    expect(mayPublish('MB-AAAA1111', 'mbox/MB-AAAA1111/status')).toBe(false);
    expect(mayPublish('localhost', 'mbox/localhost/status')).toBe(false);
    expect(mayPublish('', 'mbox//status')).toBe(false);
  });
});

describe('device subscribe', () => {
  it('may subscribe exactly to its desired config and command requests', () => {
    expect(maySubscribe(A, topics.desired(A))).toBe(true);
    expect(maySubscribe(A, topics.commandRequest(A))).toBe(true);
  });

  it('may not read its own outbound topics or anyone else', () => {
    for (const f of [topics.telemetry(A), topics.status(A), topics.reported(A), topics.commandResponse(A), topics.desired(B), topics.commandRequest(B)]) {
      expect(maySubscribe(A, f), f).toBe(false);
    }
  });

  it('refuses every wildcard, even one that stays inside its own tree', () => {
    const bad = ['#', '+', '+/#', 'mbox/#', 'mbox/+', 'mbox/+/telemetry', 'mbox/+/config/desired', `mbox/${A}/#`, `mbox/${A}/+`, `mbox/${A}/config/+`, `mbox/${A}/commands/#`, `mbox/${B}/#`, '$SYS/#', '$SYS/+/heartbeat'];
    for (const f of bad) expect(maySubscribe(A, f), f).toBe(false);
  });

  it('refuses near misses', () => {
    for (const f of [`mbox/${A}`, `mbox/${A}/`, `mbox/${A}/config/desired/`, `mbox/${A.toUpperCase()}/config/desired`, `mbox/${A}/config/desired\u0000`, '']) {
      expect(maySubscribe(A, f), JSON.stringify(f)).toBe(false);
    }
  });
});

describe('fleet service', () => {
  it('may publish and subscribe anywhere under mbox/', () => {
    expect(mayPublish(FLEET, topics.desired(A))).toBe(true);
    expect(mayPublish(FLEET, topics.commandRequest(B))).toBe(true);
    for (const f of [...topics.fleetSubscriptions, 'mbox/#', `mbox/${A}/#`, 'mbox/+/+']) expect(maySubscribe(FLEET, f), f).toBe(true);
  });

  it('stays inside mbox/', () => {
    for (const t of ['#', '+/#', '$SYS/#', 'mbox', 'mbox/', 'other/topic', 'MBOX/#', '+/telemetry']) {
      expect(maySubscribe(FLEET, t), t).toBe(false);
    }
    for (const t of ['mbox', 'mbox/', '$SYS/x', 'other']) expect(mayPublish(FLEET, t), t).toBe(false);
  });

  it('never publishes with wildcards', () => {
    expect(mayPublish(FLEET, 'mbox/+/config/desired')).toBe(false);
    expect(mayPublish(FLEET, 'mbox/#')).toBe(false);
  });
});

describe('limits', () => {
  it('refuses over-long topics and filters', () => {
    const long = `mbox/${A}/${'x'.repeat(MAX_TOPIC_LENGTH)}`;
    expect(mayPublish(FLEET, long)).toBe(false);
    expect(maySubscribe(FLEET, long)).toBe(false);
    expect(mayPublish(FLEET, `mbox/${'x'.repeat(MAX_TOPIC_LENGTH - 5)}`)).toBe(true);
  });

  it('refuses NUL anywhere', () => {
    expect(mayPublish(FLEET, 'mbox/a\u0000b')).toBe(false);
    expect(maySubscribe(FLEET, 'mbox/\u0000/#')).toBe(false);
  });
});

describe('mayReceive (checked on every delivery)', () => {
  it('delivers to a device only what it may subscribe to', () => {
    expect(mayReceive(A, topics.desired(A))).toBe(true);
    expect(mayReceive(A, topics.commandRequest(A))).toBe(true);
    expect(mayReceive(A, topics.telemetry(A))).toBe(false);
    expect(mayReceive(A, topics.desired(B))).toBe(false);
    expect(mayReceive(A, '$SYS/x/heartbeat')).toBe(false);
  });

  it('delivers to the fleet anything under mbox/', () => {
    expect(mayReceive(FLEET, topics.telemetry(A))).toBe(true);
    expect(mayReceive(FLEET, '$SYS/x/heartbeat')).toBe(false);
    expect(mayReceive(FLEET, '$mbox-denied/x')).toBe(false);
  });
});

describe('mayWill', () => {
  it('lets a box leave a will only on its own status topic', () => {
    expect(mayWill(A, topics.status(A))).toBe(true);
    expect(mayWill(A, topics.telemetry(A))).toBe(false);
    expect(mayWill(A, topics.status(B))).toBe(false);
    expect(mayWill(A, topics.desired(A))).toBe(false);
    expect(mayWill('someone', 'mbox/someone/status')).toBe(false);
  });

  it('lets the fleet leave one anywhere it may publish', () => {
    expect(mayWill(FLEET, 'mbox/fleet/status')).toBe(true);
    expect(mayWill(FLEET, '$SYS/x')).toBe(false);
  });
});

describe('update topics', () => {
  const id = 'mb-upd0001';
  it('a box reports its update status and reads its offer, and nothing more', () => {
    expect(mayPublish(id, topics.updateStatus(id))).toBe(true);
    expect(maySubscribe(id, topics.updateOffer(id))).toBe(true);
    // It may not offer itself a release, nor read the fleet's view of its status.
    expect(mayPublish(id, topics.updateOffer(id))).toBe(false);
    expect(maySubscribe(id, topics.updateStatus(id))).toBe(false);
    expect(maySubscribe(id, topics.updateOffer('mb-other001'))).toBe(false);
    expect(mayReceive(id, topics.updateOffer('mb-other001'))).toBe(false);
  });
  it('the fleet service subscribes to every update status', () => {
    expect(topics.fleetSubscriptions).toContain('mbox/+/update/status');
    expect(maySubscribe(FLEET_SERVICE_IDENTITY, 'mbox/+/update/status')).toBe(true);
  });
});
