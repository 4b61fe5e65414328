"""Yardstick's Python client: post a batch, evaluate it, read the verdict, from a pipeline.

```python
from yardstick import Client          # AsyncClient for asyncio
client = Client("http://127.0.0.1:8000")          # api_key defaults to $YARDSTICK_API_KEY; url to $YARDSTICK_URL or http://127.0.0.1:8000
batch = client.post_batch(frame, model="fraud-gbm", version="7", task="binary", positive_class=1)   # pandas / polars DataFrame or pyarrow Table -> streamed as Parquet; returns the schemas.batches batch model
client.put_labels(batch, labels_frame)            # or a list of {"sample_id", "label"}
job = client.evaluate(batch, metrics=["accuracy", "roc_auc"], bootstrap={"samples": 1000}, gates=[{"metric": "roc_auc", "min": 0.8}])
result = job.wait(progress=True)                  # schemas.results.EvaluationResult; raises JobFailed on a failed job
print(result.verdict.status)
job.slices()                                      # slice tables as pandas DataFrames (one per column/cross)
job.report("report.html")                         # saves GET /v1/jobs/{id}/report
```

Requests that fail with 429 (after ``Retry-After``), 503 or a broken connection are retried with
exponential backoff; creating requests carry one ``Idempotency-Key`` across attempts, so a retry
never creates a second batch or job. Other errors raise :class:`YardstickError` with the server's
problem document (``title``, ``detail``, ``errors`` naming each field).
"""  # noqa: E501 - the tour is kept as the README shows it

from yardstick.aio import AsyncClient
from yardstick.client import Client
from yardstick.errors import JobFailed, YardstickError
from yardstick.jobs import AsyncJob, Job
from yardstick.retry import RetryPolicy

__all__ = ["AsyncClient", "AsyncJob", "Client", "Job", "JobFailed", "RetryPolicy", "YardstickError"]
