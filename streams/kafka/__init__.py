"""Kafka plumbing below the runtime: the local broker, making a cluster match the catalog, reading
and following topics, and a record as a person reads it."""

from streams.kafka.admin import ExistingTopic, TopicAdmin, check_copartitioned, plan
from streams.kafka.broker import CLUSTER_SETTINGS, BrokerState, LocalBroker, wait_for_metadata
from streams.kafka.connection import Cluster, KafkaSecurity
from streams.kafka.follow import Arrival, Follower
from streams.kafka.readable import describe
from streams.kafka.reading import Position, Selection, TopicReader, parse_position, partitions_of

__all__ = [
    "CLUSTER_SETTINGS",
    "Arrival",
    "BrokerState",
    "Cluster",
    "ExistingTopic",
    "Follower",
    "KafkaSecurity",
    "LocalBroker",
    "Position",
    "Selection",
    "TopicAdmin",
    "TopicReader",
    "check_copartitioned",
    "describe",
    "parse_position",
    "partitions_of",
    "plan",
    "wait_for_metadata",
]
