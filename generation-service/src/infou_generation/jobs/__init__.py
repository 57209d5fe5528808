"""Generation jobs: one JetStream work-queue consumer per `jobs.<kind>` subject.

How a job kind is added (one module, one line in main.py):

1. A module here, e.g. `jobs/article.py`, with a factory that builds its consumer from the
   shared `JobContext` (settings, sessions, the outbox table, the `GenerationEngine`, the
   catalog client)::

       from infou_generation.jobs.runner import JobContext, decode, job_consumer
       from infou_libs.messaging import DurableConsumer
       from infou_protos.events.v1 import events_pb2

       KIND = "article.generate"  # subject jobs.article.generate, durable gen-article-generate

       def consumer(ctx: JobContext) -> DurableConsumer:
           async def handle(msg: Msg) -> None:
               job = decode(msg, events_pb2.GenerateArticleJob)  # PermanentError if garbled
               generated = await ctx.engine.generate("article", context, session_id=job.session_id)
               async with unit_of_work(ctx.sessions) as session:  # result + event together
                   await add_event(session, ctx.outbox, "events.generation.article_generated", …)

           async def exhausted(msg: Msg, exc: BaseException) -> None:
               ...  # the terminal failure event with the error code the client sees

           return job_consumer(ctx, KIND, handle, on_exhausted=exhausted)

2. Its factory in `main.JOB_CONSUMERS`.

`job_consumer` gives a durable pull consumer named `gen-<kind>` (dots become dashes: NATS
durable names cannot hold them) on the JOBS stream, filtered to `jobs.<kind>`, with
`settings.worker_concurrency` jobs in flight per process unless told otherwise. A handler that
returns acks the job; one that raises is redelivered with backoff (`jobs_retry_backoff_seconds`:
1 s, 4 s, 16 s, so 3 retries), then `on_exhausted` runs; `PermanentError` skips the retries.
A worker killed mid-job never acks: JetStream redelivers the job after
`jobs_ack_wait_seconds` (the consumer tells JetStream a long job is still alive while it
runs), so handlers must be idempotent — check the stored state first and write results with
their event in one transaction. `jobs/subtopics.py` is a complete example.
"""
