# The podium workers, for docker-compose.yml. The broker is the official apache/kafka image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY agents ./agents
RUN pip install --no-cache-dir .
COPY schemas ./schemas
COPY topics.yaml models.yaml models.sim.yaml pipelines.yaml ./
ENTRYPOINT ["podium"]
