// The stack teams usually build instead of segd, for `segd loadtest --compare`:
// Fastify in front of Redis holding each user's segment ids as a JSON string
// (key = user key). Same routes and answers as segd's lookups, written the
// way a team would write them (async handler, one GET / MGET per request).
//
//   REDIS_URL=redis://127.0.0.1:P node dist/src/loadtest/fastify-redis.js
//
// Prints {"msg":"listening","port":…} when ready; stops on SIGTERM/SIGINT.
import Fastify from 'fastify';
import { createClient } from 'redis';

const redis = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
await redis.connect();

const app = Fastify({ logger: false });

app.get('/v1/segments', async (req, reply) => {
  const { uid, format } = req.query as { uid?: string; format?: string };
  if (!uid) return reply.code(400).send({ error: { code: 'UID_MISSING', message: 'a user key is required (uid=…)' } });
  const v = await redis.get(uid);
  const segments = v ? (JSON.parse(v) as number[]) : [];
  if (format === 'kv') return reply.type('text/plain').send(`seg=${segments.join(',')}`);
  return { uid, segments };
});

// "::" is Fastify's escape for a literal colon in a path.
app.post('/v1/segments::batch', async (req) => {
  const { uids } = req.body as { uids: string[] };
  const values = uids.length ? await redis.mGet(uids) : [];
  return { results: uids.map((uid, i) => ({ uid, segments: values[i] ? (JSON.parse(values[i]!) as number[]) : [] })) };
});

const address = await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) });
process.stdout.write(
  JSON.stringify({ msg: 'listening', port: Number(new URL(address).port), pid: process.pid }) + '\n',
);

const stop = () => {
  void app.close().finally(() => redis.quit().finally(() => process.exit(0)));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
