"""Writes records framed for a schema registry with the confluent-kafka client's own serializers (Avro,
JSON Schema, Protobuf), for kconn's tests. Nothing here frames a message by hand.

  produce.py --bootstrap HOST:PORT --registry URL --topic T[,T...] --format avro|json|protobuf
             [--count N] [--version 1|2] [--keys] [--record NAME] [--user U --password-env VAR]

Version 2 of each schema adds an optional field `note`. With --keys the keys are Avro records too.
Prints the schema ids used, as JSON: {"value": id, "key": id}.
"""
import argparse
import json
import os
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

p = argparse.ArgumentParser()
p.add_argument("--bootstrap", required=True)
p.add_argument("--registry", required=True)
p.add_argument("--topic", required=True)
p.add_argument("--format", choices=["avro", "json", "protobuf"], required=True)
p.add_argument("--count", type=int, default=5)
p.add_argument("--version", type=int, choices=[1, 2], default=1)
p.add_argument("--keys", action="store_true")
p.add_argument("--record", default="Order", help="the Avro record's name (a new name is a new schema)")
p.add_argument("--user")
p.add_argument("--password-env")
a = p.parse_args()

conf = {"url": a.registry}
if a.user:
    conf["basic.auth.user.info"] = f"{a.user}:{os.environ[a.password_env]}"
sr = SchemaRegistryClient(conf)
v2 = a.version == 2


def avro_schema():
    fields = [
        {"name": "id", "type": "long"},
        {"name": "amount", "type": "double"},
        {"name": "customer", "type": "string"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line",
                                                               "fields": [{"name": "sku", "type": "string"},
                                                                          {"name": "qty", "type": "int"}]}}},
    ]
    if v2:
        fields.append({"name": "note", "type": ["null", "string"], "default": None})
    return json.dumps({"type": "record", "name": a.record, "namespace": "shop", "fields": fields})


def json_schema():
    props = {"id": {"type": "integer"}, "amount": {"type": "number"}, "customer": {"type": "string"},
             "status": {"type": "string", "enum": ["NEW", "PAID"]},
             "lines": {"type": "array", "items": {"type": "object", "properties": {
                 "sku": {"type": "string"}, "qty": {"type": "integer"}}}}}
    if v2:
        props["note"] = {"type": ["string", "null"]}
    return json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order",
                       "type": "object", "properties": props,
                       "required": ["id", "amount", "customer", "status", "lines"]})


def protobuf_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name=f"orders_v{a.version}.proto", package="shop", syntax="proto3")
    m = fdp.message_type.add(name="Order")
    line = m.nested_type.add(name="Line")
    line.field.add(name="sku", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    line.field.add(name="qty", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    status = m.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)
    m.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="amount", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    m.field.add(name="customer", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="status", number=4, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL, type_name=".shop.Order.Status")
    m.field.add(name="lines", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".shop.Order.Line")
    if v2:
        m.field.add(name="note", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def record(i):
    r = {"id": i, "amount": 10.5 + i, "customer": f"c{i}", "status": "PAID" if i % 2 else "NEW",
         "lines": [{"sku": f"A{i}", "qty": i + 1}]}
    if v2:
        r["note"] = f"note {i}"
    return r


if a.format == "avro":
    serializer = AvroSerializer(sr, avro_schema(), conf={"auto.register.schemas": True})
    make = record
elif a.format == "json":
    serializer = JSONSerializer(json_schema(), sr, conf={"auto.register.schemas": True})
    make = record
else:
    Order = protobuf_class()
    serializer = ProtobufSerializer(Order, sr, conf={"auto.register.schemas": True, "use.deprecated.format": False})

    def make(i):
        r = record(i)
        o = Order(id=r["id"], amount=r["amount"], customer=r["customer"], status=1 if i % 2 else 0)
        line = o.lines.add()
        line.sku = r["lines"][0]["sku"]
        line.qty = r["lines"][0]["qty"]
        if v2:
            o.note = r["note"]
        return o

key_serializer = None
if a.keys:
    key_serializer = AvroSerializer(sr, json.dumps({"type": "record", "name": "OrderKey", "namespace": "shop",
                                                    "fields": [{"name": "id", "type": "long"}]}),
                                    conf={"auto.register.schemas": True})

# The topic, if it is not there yet (the test brokers create none by themselves).
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": a.bootstrap})
topics = a.topic.split(",")
created = admin.create_topics([NewTopic(t, 1, 1) for t in topics])
for future in created.values():
    try:
        future.result(30)
    except Exception as e:  # an existing topic is fine
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise
producer = Producer({"bootstrap.servers": a.bootstrap})
ids = {}
for topic in topics:
    for i in range(a.count):
        value = serializer(make(i), SerializationContext(topic, MessageField.VALUE))
        ids["value"] = int.from_bytes(value[1:5], "big")
        key = None
        if key_serializer:
            key = key_serializer({"id": i}, SerializationContext(topic, MessageField.KEY))
            ids["key"] = int.from_bytes(key[1:5], "big")
        producer.produce(topic, value=value, key=key)
if producer.flush(30) != 0:
    sys.exit("not every record was delivered")
print(json.dumps(ids))
