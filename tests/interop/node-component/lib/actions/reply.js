'use strict';

// Answers the HTTP request that started the flow (request-reply) with `{got: body}`, then
// emits the body as data; throws when the body has `fail`, so that sailor-nodejs sends the
// error to reply_to too.
exports.process = async function process(msg) {
  if (msg.body && msg.body.fail) {
    throw new Error('asked to fail');
  }
  await this.emit('httpReply', {
    statusCode: 201,
    body: { got: msg.body },
    headers: { 'content-type': 'application/json' }
  });
  await this.emit('data', { body: msg.body, headers: {}, attachments: {} });
};
