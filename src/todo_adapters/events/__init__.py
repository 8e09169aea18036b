"""Where the worker sends events (SPEC §16): one module per outside system.

- `envelope`: the CloudEvents 1.0 structured JSON every sink sends;
- `nats`: NATS JetStream (the `[events]` extra: nats-py);
- `redis_streams`: Redis Streams (the `[redis]` extra);
- `webhooks`: Standard Webhooks signed POSTs (the `[events]` extra: standardwebhooks, httpx).
"""
