'use strict';

// The benchmark's `request` (scripts/bench): POSTs the message body as JSON to
// `cfg.api_base_url + cfg.path` with the step's bearer token, over a keep-alive agent, and
// emits `{status, headers, body}` as our runtime's `request` action does. Node's own http
// module: what a hand-written sailor-nodejs component would use.
const http = require('http');

const agent = new http.Agent({ keepAlive: true });

function post(url, token, payload) {
    return new Promise((resolve, reject) => {
        const req = http.request(url, {
            method: 'POST',
            agent,
            headers: {
                authorization: `Bearer ${token}`,
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(payload),
            },
        }, (res) => {
            const chunks = [];
            res.on('data', (chunk) => chunks.push(chunk));
            res.on('end', () => resolve({ res, text: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end(payload);
    });
}

exports.process = async function process(msg, cfg) {
    const { res, text } = await post(
        `${cfg.api_base_url}${cfg.path}`,
        cfg.oauth.access_token,
        JSON.stringify(msg.body),
    );
    const body = text === '' ? null : JSON.parse(text);
    await this.emit('data', {
        body: { status: res.statusCode, headers: res.headers, body },
        headers: {},
        attachments: {},
    });
};
