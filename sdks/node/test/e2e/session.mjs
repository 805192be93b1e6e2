// Proof (6): a metered session places a hold, commits the actual amount, releases on error.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AforoClient } from '../../src/index.js';
import { clientOptions, platform } from '../platform.mjs';

describe('metered sessions end to end', () => {
  let p;
  before(async () => { p = await platform(); });

  it('commits the actual amount: the wallet is charged exactly that, the rest is released', async () => {
    const globex = p.customer('Globex');
    const client = new AforoClient(clientOptions(p));
    const walletBefore = await p.admin(`/api/v1/wallets/${globex.wallet_id}`);
    let seenInside;
    const result = await client.meteredSession({ walletId: globex.wallet_id, amount: '5', ttlSeconds: 60 }, async (session) => {
      seenInside = await p.admin(`/api/v1/wallets/${globex.wallet_id}`);
      session.add('1.25');
      session.add('2');
      return session.holdId;
    });
    assert.equal(Number(seenInside.held) - Number(walletBefore.held), 5, 'the hold reserved 5 while the session ran');
    const hold = await p.admin(`/api/v1/holds/${result}`);
    assert.equal(hold.status, 'committed');
    assert.equal(hold.committed_amount, '3.25');
    const walletAfter = await p.admin(`/api/v1/wallets/${globex.wallet_id}`);
    assert.equal(walletAfter.held, walletBefore.held);
    assert.equal(Math.round((Number(walletBefore.balance) - Number(walletAfter.balance)) * 100), 325);
    await client.close();
  });

  it('releases the hold when the work throws, and rethrows', async () => {
    const globex = p.customer('Globex');
    const client = new AforoClient(clientOptions(p));
    const walletBefore = await p.admin(`/api/v1/wallets/${globex.wallet_id}`);
    let holdId;
    await assert.rejects(
      client.meteredSession({ walletId: globex.wallet_id, amount: '4', ttlSeconds: 60 }, async (session) => {
        holdId = session.holdId;
        throw new Error('tool crashed');
      }),
      /tool crashed/,
    );
    const hold = await p.admin(`/api/v1/holds/${holdId}`);
    assert.equal(hold.status, 'released');
    const walletAfter = await p.admin(`/api/v1/wallets/${globex.wallet_id}`);
    assert.equal(walletAfter.balance, walletBefore.balance);
    assert.equal(walletAfter.held, walletBefore.held);
    await client.close();
  });
});
