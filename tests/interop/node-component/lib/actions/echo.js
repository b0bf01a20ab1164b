'use strict';

// Emits the incoming body unchanged, as a new message. The sailor adds ids, headers,
// passthrough and encryption: what the interop tests check is the sailor's wire format.
// A body with `updateKeys` or `updateSnapshot` emits those events first, so that the tests
// can watch how sailor-nodejs puts them on the wire; one with `fail` throws it as an error.
exports.process = async function process(msg) {
  if (msg.body && msg.body.fail) {
    throw new Error(msg.body.fail);
  }
  if (msg.body && msg.body.updateKeys) {
    await this.emit('updateKeys', msg.body.updateKeys);
  }
  if (msg.body && msg.body.updateSnapshot) {
    await this.emit('updateSnapshot', msg.body.updateSnapshot);
  }
  await this.emit('data', { body: msg.body, headers: {}, attachments: {} });
};
