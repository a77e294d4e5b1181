package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.google.protobuf.util.JsonFormat;
import io.shardmap.cli.FakeDirectory.Result;
import io.shardmap.proto.v1.*;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Argument to request mapping and text/JSON output of each command, against an in-process fake server. */
@Tag("unit")
class CommandsTest {
  private final FakeDirectory fake = new FakeDirectory();

  @AfterEach
  void close() {
    fake.close();
  }

  static final KeyspaceSpec USERS = KeyspaceSpec.newBuilder().setName("users").setKeyType(KeyType.KEY_TYPE_INT64)
      .setStrategy(Strategy.STRATEGY_RANGE)
      .addTables(ShardedTable.newBuilder().setName("users").setKeyColumn("id")).build();
  static final KeyspaceSpec TENANTS = KeyspaceSpec.newBuilder().setName("tenants")
      .setKeyType(KeyType.KEY_TYPE_BYTES).setStrategy(Strategy.STRATEGY_DIRECTORY).build();

  static ListKeyspacesResponse keyspaces() {
    return ListKeyspacesResponse.newBuilder().addKeyspaces(TENANTS).addKeyspaces(USERS).setRevision(40).build();
  }

  static Key intKey(long v) {
    return Key.newBuilder().setIntKey(v).build();
  }

  static Key stringKey(String s) {
    return Key.newBuilder().setStringKey(s).build();
  }

  static Shard shard(String name, int port) {
    return Shard.newBuilder().setName(name)
        .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(port).setDatabase(name))
        .setState(ShardState.SHARD_STATE_ACTIVE).setRevision(7).build();
  }

  static void ok(Result r) {
    assertEquals(0, r.code(), r::toString);
    assertEquals("", r.err(), r::toString);
  }

  // ---- shards

  @Test
  void shardRegisterMapsEveryFlag() {
    Shard stored = shard("shard1", 5433).toBuilder().setRegion("eu-west").build();
    fake.answer("RegisterShard", RegisterShardResponse.newBuilder().setShard(stored).setRevision(9).build());

    Result r = fake.run("shard", "register", "shard1", "--host", "127.0.0.1", "--port", "5433", "--database",
        "shard1", "--replica", "127.0.0.2:5433/shard1", "--replica", "[::1]:6432/shard1_ro", "--region", "eu-west");

    ok(r);
    Shard sent = fake.only(RegisterShardRequest.class).getShard();
    assertEquals("shard1", sent.getName());
    assertEquals(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5433).setDatabase("shard1").build(),
        sent.getPrimary());
    assertEquals(List.of(
        Endpoint.newBuilder().setHost("127.0.0.2").setPort(5433).setDatabase("shard1").build(),
        Endpoint.newBuilder().setHost("::1").setPort(6432).setDatabase("shard1_ro").build()),
        sent.getReplicasList());
    assertEquals("eu-west", sent.getRegion());
    assertEquals(ShardState.SHARD_STATE_UNSPECIFIED, sent.getState(), "the server picks the initial state");
    assertEquals("registered shard shard1 (revision 9)\n"
        + "NAME    PRIMARY                REPLICAS  REGION   STATE   REVISION\n"
        + "shard1  127.0.0.1:5433/shard1  -         eu-west  active  7\n", r.out());
  }

  @Test
  void shardRegisterRejectsBadPortAndEndpointWithoutCallingTheServer() {
    Result badPort = fake.run("shard", "register", "s", "--host", "h", "--port", "70000", "--database", "d");
    Result badReplica = fake.run("shard", "register", "s", "--host", "h", "--port", "1", "--database", "d",
        "--replica", "h:5432");
    Result missing = fake.run("shard", "register", "s", "--host", "h", "--port", "1");

    assertEquals(2, badPort.code(), badPort::toString);
    assertTrue(badPort.err().contains("'70000' is not a TCP port"), badPort::toString);
    assertEquals(2, badReplica.code(), badReplica::toString);
    assertTrue(badReplica.err().contains("is not host:port/database"), badReplica::toString);
    assertEquals(2, missing.code(), missing::toString);
    assertTrue(missing.err().startsWith("error: usage: Missing required option: '--database"), missing::toString);
    assertEquals(List.of(), fake.requests());
  }

  @Test
  void shardUpdateChangesOnlyGivenFieldsGuardedByTheRevisionRead() {
    Shard current = shard("shard2", 5434).toBuilder().setRegion("eu").setRevision(31)
        .addReplicas(Endpoint.newBuilder().setHost("10.0.0.9").setPort(5434).setDatabase("shard2")).build();
    fake.answer("ListShards", ListShardsResponse.newBuilder().addShards(shard("shard1", 5433))
        .addShards(current).build());
    Shard updated = current.toBuilder().setState(ShardState.SHARD_STATE_DRAINING).setRevision(44).build();
    fake.answer("UpdateShard", UpdateShardResponse.newBuilder().setShard(updated).setRevision(44).build());

    Result r = fake.run("shard", "update", "shard2", "--state", "draining", "--port", "6000");

    ok(r);
    UpdateShardRequest req = fake.only(UpdateShardRequest.class);
    assertEquals(31, req.getExpectedRevision());
    Shard want = current.toBuilder().clearRevision().setState(ShardState.SHARD_STATE_DRAINING)
        .setPrimary(current.getPrimary().toBuilder().setPort(6000)).build();
    assertEquals(want, req.getShard());
    assertTrue(r.out().startsWith("updated shard shard2 (revision 44)\n"), r::toString);
  }

  @Test
  void shardUpdateExplicitRevisionAndReplicaReplacement() {
    Shard current = shard("shard2", 5434).toBuilder().setRevision(31)
        .addReplicas(Endpoint.newBuilder().setHost("10.0.0.9").setPort(5434).setDatabase("shard2")).build();
    fake.answer("ListShards", ListShardsResponse.newBuilder().addShards(current).build());
    fake.answer("UpdateShard", UpdateShardResponse.newBuilder().setShard(current).setRevision(50).build());

    ok(fake.run("shard", "update", "shard2", "--no-replicas", "--region", "", "--expected-revision", "30"));

    UpdateShardRequest req = fake.only(UpdateShardRequest.class);
    assertEquals(30, req.getExpectedRevision());
    assertEquals(0, req.getShard().getReplicasCount());
    assertEquals("", req.getShard().getRegion());
  }

  @Test
  void shardUpdateOfUnknownShardIsNotFoundAndWritesNothing() {
    fake.answer("ListShards", ListShardsResponse.newBuilder().addShards(shard("shard1", 5433)).build());

    Result r = fake.run("shard", "update", "nope", "--state", "down");

    assertEquals(3, r.code(), r::toString);
    assertEquals("error: NOT_FOUND: shard 'nope' is not registered\n", r.err());
    assertEquals(List.of(), fake.all(UpdateShardRequest.class));
  }

  @Test
  void shardUpdateWithoutChangesIsAUsageError() {
    Result r = fake.run("shard", "update", "shard1");
    assertEquals(2, r.code(), r::toString);
    assertTrue(r.err().contains("nothing to change"), r::toString);
    assertEquals(List.of(), fake.requests());
  }

  @Test
  void shardDeregisterAndList() {
    fake.answer("DeregisterShard", DeregisterShardResponse.newBuilder().setRevision(12).build());
    fake.answer("ListShards", ListShardsResponse.newBuilder()
        .addShards(shard("shard1", 5433).toBuilder().addReplicas(Endpoint.newBuilder().setHost("h2").setPort(1)
            .setDatabase("d")))
        .addShards(shard("shard10", 15435).toBuilder().setState(ShardState.SHARD_STATE_DOWN).setRegion("us"))
        .build());

    Result d = fake.run("shard", "deregister", "shard3");
    Result l = fake.run("shard", "list");

    ok(d);
    assertEquals("shard3", fake.only(DeregisterShardRequest.class).getName());
    assertEquals("deregistered shard shard3 (revision 12)\n", d.out());
    ok(l);
    assertEquals(""
        + "NAME     PRIMARY                  REPLICAS  REGION  STATE   REVISION\n"
        + "shard1   127.0.0.1:5433/shard1    h2:1/d    -       active  7\n"
        + "shard10  127.0.0.1:15435/shard10  -         us      down    7\n", l.out());
  }

  // ---- Patroni shards

  static Shard patroniShard(String name, String scope, int port, long term) {
    return Shard.newBuilder().setName(name)
        .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(port).setDatabase(name))
        .addReplicas(Endpoint.newBuilder().setHost("127.0.0.1").setPort(port + 1).setDatabase(name))
        .setPatroni(PatroniSource.newBuilder().setScope(scope).setDatabase(name).setObservedRevision(88))
        .setPrimaryTerm(term).setState(ShardState.SHARD_STATE_ACTIVE).setRevision(90).build();
  }

  @Test
  void shardRegisterWithPatroniScopeSendsTheSourceAndNoEndpoints() {
    Shard stored = patroniShard("shard1", "pg-shard1", 25433, 1);
    fake.answer("RegisterShard", RegisterShardResponse.newBuilder().setShard(stored).setRevision(90).build());

    Result r = fake.run("shard", "register", "shard1", "--patroni-scope", "pg-shard1", "--patroni-database", "shard1",
        "--region", "eu");
    Result ns = fake.run("shard", "register", "shard2", "--patroni-scope", "s2", "--patroni-namespace", "/demo");

    ok(r);
    ok(ns);
    List<RegisterShardRequest> sent = fake.all(RegisterShardRequest.class);
    assertEquals(Shard.newBuilder().setName("shard1").setRegion("eu")
        .setPatroni(PatroniSource.newBuilder().setScope("pg-shard1").setDatabase("shard1")).build(),
        sent.get(0).getShard(), "no primary, no replicas; the namespace left to the server's default");
    assertEquals(PatroniSource.newBuilder().setScope("s2").setNamespace("/demo").build(),
        sent.get(1).getShard().getPatroni());
    assertFalse(sent.get(1).getShard().hasPrimary());
    assertEquals("registered shard shard1 (revision 90)\n"
        + "NAME    PRIMARY                 REPLICAS                REGION  STATE   REVISION  PATRONI             TERM\n"
        + "shard1  127.0.0.1:25433/shard1  127.0.0.1:25434/shard1  -       active  90        /service/pg-shard1  1\n",
        r.out());
  }

  @Test
  void shardRegisterRefusesPatroniScopeWithFixedEndpointsAndPatroniOptionsWithoutScope() {
    Result both = fake.run("shard", "register", "s", "--patroni-scope", "c", "--host", "h", "--port", "1",
        "--database", "d");
    Result replica = fake.run("shard", "register", "s", "--patroni-scope", "c", "--replica", "h:1/d");
    Result nsOnly = fake.run("shard", "register", "s", "--host", "h", "--port", "1", "--database", "d",
        "--patroni-namespace", "/x");
    Result empty = fake.run("shard", "register", "s", "--patroni-scope", "");
    Result nothing = fake.run("shard", "register", "s");

    for (Result r : List.of(both, replica, nsOnly, empty, nothing)) {
      assertEquals(2, r.code(), r::toString);
    }
    assertTrue(both.err().contains("--patroni-scope and --host, --port, --database, --replica exclude each other"),
        both::toString);
    assertTrue(replica.err().contains("exclude each other"), replica::toString);
    assertTrue(nsOnly.err().contains("--patroni-namespace and --patroni-database need --patroni-scope"),
        nsOnly::toString);
    assertTrue(empty.err().contains("--patroni-scope must not be empty"), empty::toString);
    assertTrue(nothing.err().startsWith("error: usage: Missing required options: '--host', '--port', '--database'"
        + " (a shard needs --host, --port and --database, or --patroni-scope)"), nothing::toString);
    assertEquals(List.of(), fake.requests());
  }

  @Test
  void shardUpdateTurnsAFixedShardIntoAPatroniOneWithoutItsEndpoints() {
    Shard current = shard("shard2", 5434).toBuilder().setRegion("eu").setRevision(31)
        .addReplicas(Endpoint.newBuilder().setHost("10.0.0.9").setPort(5434).setDatabase("shard2")).build();
    fake.answer("ListShards", ListShardsResponse.newBuilder().addShards(current).build());
    fake.answer("UpdateShard", UpdateShardResponse.newBuilder().setShard(patroniShard("shard2", "c2", 26000, 1))
        .setRevision(44).build());

    ok(fake.run("shard", "update", "shard2", "--patroni-scope", "c2", "--patroni-namespace", "/demo"));

    UpdateShardRequest req = fake.only(UpdateShardRequest.class);
    assertEquals(31, req.getExpectedRevision());
    assertEquals(Shard.newBuilder().setName("shard2").setRegion("eu").setState(ShardState.SHARD_STATE_ACTIVE)
        .setPatroni(PatroniSource.newBuilder().setScope("c2").setNamespace("/demo")).build(), req.getShard());
  }

  @Test
  void shardUpdateOfAPatroniShardSendsItsSourceWithoutTheEndpointsAndOutputOnlyFields() {
    Shard current = patroniShard("shard3", "c3", 25435, 4);
    fake.answer("ListShards", ListShardsResponse.newBuilder().addShards(current).build());
    fake.answer("UpdateShard", UpdateShardResponse.newBuilder().setShard(current).setRevision(95).build());

    ok(fake.run("shard", "update", "shard3", "--state", "draining"));
    ok(fake.run("shard", "update", "shard3", "--patroni-database", "", "--patroni-namespace", "/other"));

    List<UpdateShardRequest> sent = fake.all(UpdateShardRequest.class);
    assertEquals(Shard.newBuilder().setName("shard3").setState(ShardState.SHARD_STATE_DRAINING)
        .setPatroni(PatroniSource.newBuilder().setScope("c3").setDatabase("shard3")).build(), sent.get(0).getShard(),
        "primary and replicas are the directory's to fill in; primary_term and observed_revision are output only");
    assertEquals(90, sent.get(0).getExpectedRevision());
    assertEquals(PatroniSource.newBuilder().setScope("c3").setNamespace("/other").build(),
        sent.get(1).getShard().getPatroni());
  }

  @Test
  void shardUpdateNoPatroniKeepsTheEndpointsLastSeenAsFixedOnes() {
    Shard current = patroniShard("shard3", "c3", 25435, 4);
    fake.answer("ListShards", ListShardsResponse.newBuilder().addShards(current).build());
    fake.answer("UpdateShard", UpdateShardResponse.newBuilder().setShard(shard("shard3", 25435)).setRevision(95)
        .build());

    ok(fake.run("shard", "update", "shard3", "--no-patroni", "--port", "25436"));

    Shard sent = fake.only(UpdateShardRequest.class).getShard();
    assertFalse(sent.hasPatroni());
    assertEquals(0, sent.getPrimaryTerm());
    assertEquals(current.getPrimary().toBuilder().setPort(25436).build(), sent.getPrimary());
    assertEquals(current.getReplicasList(), sent.getReplicasList());
  }

  @Test
  void shardUpdateRefusesMixingPatroniAndFixedEndpoints() {
    fake.answer("ListShards", ListShardsResponse.newBuilder().addShards(patroniShard("p", "c", 25433, 2))
        .addShards(shard("f", 5433)).build());

    Result scopeAndHost = fake.run("shard", "update", "f", "--patroni-scope", "c", "--host", "h");
    Result scopeAndNoPatroni = fake.run("shard", "update", "p", "--patroni-scope", "c", "--no-patroni");
    Result hostOnPatroni = fake.run("shard", "update", "p", "--port", "1");
    Result noPatroniOnFixed = fake.run("shard", "update", "f", "--no-patroni");
    Result namespaceOnFixed = fake.run("shard", "update", "f", "--patroni-namespace", "/x");

    for (Result r : List.of(scopeAndHost, scopeAndNoPatroni, hostOnPatroni, noPatroniOnFixed, namespaceOnFixed)) {
      assertEquals(2, r.code(), r::toString);
    }
    assertTrue(scopeAndHost.err().contains("exclude each other"), scopeAndHost::toString);
    assertTrue(scopeAndNoPatroni.err().contains("exclude each other"), scopeAndNoPatroni::toString);
    assertTrue(hostOnPatroni.err().contains("shard 'p' follows Patroni (/service/c)"), hostOnPatroni::toString);
    assertTrue(hostOnPatroni.err().contains("need --no-patroni"), hostOnPatroni::toString);
    assertTrue(noPatroniOnFixed.err().contains("shard 'f' does not follow Patroni"), noPatroniOnFixed::toString);
    assertTrue(namespaceOnFixed.err().contains("give --patroni-scope too"), namespaceOnFixed::toString);
    assertEquals(List.of(), fake.all(UpdateShardRequest.class));
  }

  @Test
  void shardListAndShowPrintThePatroniSourceAndTerm() {
    fake.answer("ListShards", ListShardsResponse.newBuilder().addShards(shard("fixed", 5433))
        .addShards(patroniShard("shard1", "pg1", 25433, 3).toBuilder()
            .setPatroni(PatroniSource.newBuilder().setScope("pg1").setNamespace("demo/").setObservedRevision(88)))
        .build());

    Result l = fake.run("shard", "list");
    Result p = fake.run("shard", "show", "shard1");
    Result f = fake.run("shard", "show", "fixed");
    Result missing = fake.run("shard", "show", "nope");

    ok(l);
    assertEquals(""
        + "NAME    PRIMARY                 REPLICAS                REGION  STATE   REVISION  PATRONI    TERM\n"
        + "fixed   127.0.0.1:5433/fixed    -                       -       active  7         -          -\n"
        + "shard1  127.0.0.1:25433/shard1  127.0.0.1:25434/shard1  -       active  90        /demo/pg1  3\n", l.out());
    ok(p);
    assertEquals(""
        + "name               shard1\n"
        + "primary            127.0.0.1:25433/shard1\n"
        + "replicas           127.0.0.1:25434/shard1\n"
        + "region             -\n"
        + "state              active\n"
        + "revision           90\n"
        + "patroni            /demo/pg1\n"
        + "patroni database   - (the members' conn_url)\n"
        + "observed revision  88\n"
        + "primary term       3\n", p.out());
    ok(f);
    assertTrue(f.out().contains("patroni   - (fixed endpoints)\n"), f::toString);
    assertEquals(3, missing.code(), missing::toString);
    assertEquals("error: NOT_FOUND: shard 'nope' is not registered\n", missing.err());
  }

  @Test
  void watchDescribesAPatroniShardsSourceAndTerm() {
    Shard s = patroniShard("shard1", "pg1", 25433, 2);
    assertEquals("shard shard1 = 127.0.0.1:25433/shard1, active, replicas 127.0.0.1:25434/shard1, "
        + "patroni /service/pg1 term 2", WatchCommand.describe(MapChange.newBuilder().setShard(s).build()));
  }

  // ---- keyspaces

  @Test
  void keyspaceCreateRangeWithExplicitRanges() {
    fake.answer("CreateKeyspace", CreateKeyspaceResponse.newBuilder().setSpec(USERS).setRevision(3).build());

    Result r = fake.run("keyspace", "create", "users", "--key-type", "int64", "--strategy", "range",
        "--table", "users:id", "--table", "orders:user_id",
        "--range", "..-100=s1", "--range", "-100..250=s2", "--range", "250..=s3");

    ok(r);
    CreateKeyspaceRequest req = fake.only(CreateKeyspaceRequest.class);
    assertEquals(KeyspaceSpec.newBuilder().setName("users").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName("users").setKeyColumn("id"))
        .addTables(ShardedTable.newBuilder().setName("orders").setKeyColumn("user_id")).build(), req.getSpec());
    assertEquals(List.of(
        RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setEnd(intKey(-100))).setShard("s1").build(),
        RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(intKey(-100)).setEnd(intKey(250)))
            .setShard("s2").build(),
        RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(intKey(250))).setShard("s3").build()),
        req.getRangesList());
    assertEquals(0, req.getRangeShardsCount());
    assertEquals("created keyspace users (int64 keys, range) (revision 3)\n", r.out());
  }

  @Test
  void keyspaceCreateEveryOtherStrategy() {
    fake.answer("CreateKeyspace", CreateKeyspaceResponse.newBuilder().setSpec(USERS).setRevision(3).build());

    ok(fake.run("keyspace", "create", "a", "--key-type", "int64", "--strategy", "range",
        "--range-shards", "s1,s2,s3"));
    ok(fake.run("keyspace", "create", "b", "--key-type", "bytes", "--strategy", "hash", "--buckets", "s1,s2",
        "--buckets", "s3"));
    ok(fake.run("keyspace", "create", "c", "--key-type", "bytes", "--strategy", "consistent-hash",
        "--ring-shards", "s1,s2", "--vnodes", "64"));
    ok(fake.run("keyspace", "create", "d", "--key-type", "bytes", "--strategy", "directory", "--fallback", "s1"));
    ok(fake.run("keyspace", "create", "e", "--key-type", "bytes", "--strategy", "GEOGRAPHIC",
        "--region", "eu=s1", "--region", "us-east=s2", "--default-region", "eu"));

    List<CreateKeyspaceRequest> reqs = fake.all(CreateKeyspaceRequest.class);
    assertEquals(5, reqs.size());
    assertEquals(List.of("s1", "s2", "s3"), reqs.get(0).getRangeShardsList());
    assertEquals(KeyType.KEY_TYPE_BYTES, reqs.get(1).getSpec().getKeyType());
    assertEquals(Strategy.STRATEGY_HASH, reqs.get(1).getSpec().getStrategy());
    assertEquals(List.of("s1", "s2", "s3"), reqs.get(1).getHashBucketsList());
    assertEquals(Strategy.STRATEGY_CONSISTENT_HASH, reqs.get(2).getSpec().getStrategy());
    assertEquals(List.of("s1", "s2"), reqs.get(2).getRingShardsList());
    assertEquals(64, reqs.get(2).getSpec().getDefaultVnodes());
    assertEquals(Strategy.STRATEGY_DIRECTORY, reqs.get(3).getSpec().getStrategy());
    assertEquals("s1", reqs.get(3).getFallbackShard());
    assertEquals(Strategy.STRATEGY_GEOGRAPHIC, reqs.get(4).getSpec().getStrategy());
    assertEquals(List.of(
        RegionAssignment.newBuilder().setRegion("eu").setShard("s1").build(),
        RegionAssignment.newBuilder().setRegion("us-east").setShard("s2").build()), reqs.get(4).getRegionsList());
    assertEquals("eu", reqs.get(4).getDefaultRegion());
  }

  @Test
  void keyspaceCreateRefusesOptionsOfAnotherStrategy() {
    Result buckets = fake.run("keyspace", "create", "a", "--key-type", "int64", "--strategy", "range",
        "--buckets", "s1");
    Result both = fake.run("keyspace", "create", "a", "--key-type", "int64", "--strategy", "range",
        "--range-shards", "s1", "--range", "..=s1");
    Result badType = fake.run("keyspace", "create", "a", "--key-type", "text", "--strategy", "range");
    Result badSpec = fake.run("keyspace", "create", "a", "--key-type", "int64", "--strategy", "range",
        "--range", "..x=s1");

    assertEquals(2, buckets.code(), buckets::toString);
    assertTrue(buckets.err().contains("--buckets is only for --strategy hash, not range"), buckets::toString);
    assertEquals(2, both.code(), both::toString);
    assertEquals(2, badType.code(), badType::toString);
    assertTrue(badType.err().contains("'text' is not a key type (int64 or bytes)"), badType::toString);
    assertEquals(2, badSpec.code(), badSpec::toString);
    assertEquals("error: INVALID_ARGUMENT: --range: 'x' is not a 64-bit integer\n", badSpec.err());
    assertEquals(List.of(), fake.requests());
  }

  @Test
  void keyspaceListGetDescribeDrop() {
    fake.answer("ListKeyspaces", keyspaces());
    fake.answer("DescribeKeyspace", DescribeKeyspaceResponse.newBuilder().setSpec(USERS).setLayoutEntries(3)
        .addShares(ShardShare.newBuilder().setShard("shard1").setFraction(0.5).setEntries(2))
        .addShares(ShardShare.newBuilder().setShard("shard2").setFraction(0.5).setEntries(1)).setRevision(8)
        .build());
    fake.answer("DropKeyspace", DropKeyspaceResponse.newBuilder().setRevision(99).build());

    Result list = fake.run("keyspace", "list");
    Result describe = fake.run("keyspace", "describe", "users");
    Result drop = fake.run("keyspace", "drop", "users");

    ok(list);
    assertEquals(""
        + "NAME     KEY-TYPE  STRATEGY   TABLES\n"
        + "tenants  bytes     directory  -\n"
        + "users    int64     range      users(id)\n", list.out());
    ok(describe);
    assertEquals("users", fake.only(DescribeKeyspaceRequest.class).getName());
    assertEquals(""
        + "keyspace  users\n"
        + "key type  int64\n"
        + "strategy  range\n"
        + "tables    users(id)\n"
        + "layout    3 ranges\n"
        + "revision  8\n"
        + "\n"
        + "SHARD   SHARE   ENTRIES\n"
        + "shard1  50.00%  2\n"
        + "shard2  50.00%  1\n", describe.out());
    ok(drop);
    assertEquals("users", fake.only(DropKeyspaceRequest.class).getName());
    assertEquals("dropped keyspace users (revision 99)\n", drop.out());
  }

  @Test
  void keyspaceDescribeListsTheMovingRanges() {
    fake.answer("DescribeKeyspace", DescribeKeyspaceResponse.newBuilder().setSpec(USERS).setLayoutEntries(3)
        .addShares(ShardShare.newBuilder().setShard("shard1").setFraction(1).setEntries(3)).setRevision(8)
        .addMoving(MovingRange.newBuilder().setRange(KeyRange.newBuilder().setEnd(intKey(-100)))
            .setMigrationId("m-7f3a"))
        .addMoving(MovingRange.newBuilder()
            .setRange(KeyRange.newBuilder().setStart(intKey(100)).setEnd(intKey(200))).setMigrationId("m2"))
        .addMoving(MovingRange.newBuilder().setUnit("bucket 3").setMigrationId("m3"))
        .build(),
        DescribeKeyspaceResponse.newBuilder().setSpec(USERS).setLayoutEntries(3).setRevision(9)
            .addShares(ShardShare.newBuilder().setShard("shard1").setFraction(1).setEntries(3))
            .setMovingUnknown(true).build());

    Result known = fake.run("keyspace", "describe", "users");
    Result unknown = fake.run("keyspace", "describe", "users");

    ok(known);
    assertEquals(""
        + "keyspace  users\n"
        + "key type  int64\n"
        + "strategy  range\n"
        + "tables    users(id)\n"
        + "layout    3 ranges\n"
        + "revision  8\n"
        + "\n"
        + "SHARD   SHARE    ENTRIES\n"
        + "shard1  100.00%  3\n"
        + "\n"
        + "MOVING    MIGRATION\n"
        + "..-100    m-7f3a\n"
        + "100..200  m2\n"
        + "bucket 3  m3\n", known.out());
    ok(unknown);
    assertEquals(""
        + "keyspace  users\n"
        + "key type  int64\n"
        + "strategy  range\n"
        + "tables    users(id)\n"
        + "layout    3 ranges\n"
        + "revision  9\n"
        + "moving    unknown (the server could not read etcd)\n"
        + "\n"
        + "SHARD   SHARE    ENTRIES\n"
        + "shard1  100.00%  3\n", unknown.out());
  }

  @Test
  void keyspaceGetReadsEveryPageAndPrintsRanges() {
    GetMapResponse page1 = GetMapResponse.newBuilder().setSpec(USERS).setRevision(21).setNextPageToken("21:2")
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setEnd(intKey(-100)))
            .setShard("shard1").setEpoch(1))
        .addRanges(RangeAssignment.newBuilder()
            .setRange(KeyRange.newBuilder().setStart(intKey(-100)).setEnd(intKey(250))).setShard("shard2")
            .setEpoch(3))
        .addShards(shard("shard1", 5433)).build();
    GetMapResponse page2 = GetMapResponse.newBuilder().setSpec(USERS).setRevision(21)
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(intKey(250)))
            .setShard("shard3").setEpoch(12))
        .build();
    fake.answer("GetMap", page1, page2);

    Result r = fake.run("keyspace", "get", "users", "--page-size", "2");

    ok(r);
    List<GetMapRequest> reqs = fake.all(GetMapRequest.class);
    assertEquals(2, reqs.size());
    assertEquals(GetMapRequest.newBuilder().setKeyspace("users").setPageSize(2).build(), reqs.get(0));
    assertEquals("21:2", reqs.get(1).getPageToken());
    assertEquals(""
        + "keyspace  users\n"
        + "key type  int64\n"
        + "strategy  range\n"
        + "tables    users(id)\n"
        + "revision  21\n"
        + "\n"
        + "RANGE      SHARD   EPOCH\n"
        + "..-100     shard1  1\n"
        + "-100..250  shard2  3\n"
        + "250..      shard3  12\n", r.out());
  }

  @Test
  void keyspaceGetJsonIsOneMergedResponse() throws Exception {
    GetMapResponse page1 = GetMapResponse.newBuilder().setSpec(TENANTS).setRevision(5).setNextPageToken("5:1")
        .addEntries(DirectoryEntry.newBuilder().setKey(stringKey("acme")).setShard("s1").setEpoch(2)).build();
    GetMapResponse page2 = GetMapResponse.newBuilder().setSpec(TENANTS).setRevision(5)
        .addEntries(DirectoryEntry.newBuilder().setKey(stringKey("zeta")).setShard("s2").setEpoch(4)).build();
    fake.answer("GetMap", page1, page2);

    Result r = fake.run("--output", "json", "keyspace", "get", "tenants");

    ok(r);
    GetMapResponse.Builder parsed = GetMapResponse.newBuilder();
    JsonFormat.parser().merge(r.out(), parsed);
    assertEquals(page1.toBuilder().clearNextPageToken().addAllEntries(page2.getEntriesList()).build(),
        parsed.build());
  }

  @Test
  void keyspaceGetPrintsEachStrategy() {
    KeyspaceSpec hash = USERS.toBuilder().setName("h").setStrategy(Strategy.STRATEGY_HASH).build();
    KeyspaceSpec ring = USERS.toBuilder().setName("c").setStrategy(Strategy.STRATEGY_CONSISTENT_HASH)
        .setDefaultVnodes(2).build();
    KeyspaceSpec geo = USERS.toBuilder().setName("g").setKeyType(KeyType.KEY_TYPE_BYTES)
        .setStrategy(Strategy.STRATEGY_GEOGRAPHIC).clearTables().build();
    fake.answer("GetMap",
        GetMapResponse.newBuilder().setSpec(hash).setRevision(1).setHash(HashLayout.newBuilder()
            .addBuckets(BucketAssignment.newBuilder().setShard("s1").setEpoch(1))
            .addBuckets(BucketAssignment.newBuilder().setShard("s2").setEpoch(2))).build(),
        GetMapResponse.newBuilder().setSpec(ring).setRevision(1).setRing(RingLayout.newBuilder()
            .addShards(RingShard.newBuilder().setShard("s1").addVnodeEpochs(1).addVnodeEpochs(4))
            .addShards(RingShard.newBuilder().setShard("s2").addVnodeEpochs(2).addVnodeEpochs(2))).build(),
        GetMapResponse.newBuilder().setSpec(geo).setRevision(1).setGeo(GeoLayout.newBuilder().setDefaultRegion("eu")
            .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1").setEpoch(1))
            .addRegions(RegionAssignment.newBuilder().setRegion("us").setShard("s2").setEpoch(1))).build());

    Result h = fake.run("keyspace", "get", "h");
    Result c = fake.run("keyspace", "get", "c");
    Result g = fake.run("keyspace", "get", "g");

    ok(h);
    assertTrue(h.out().endsWith("\nBUCKET  SHARD  EPOCH\n0       s1     1\n1       s2     2\n"), h::toString);
    ok(c);
    assertTrue(c.out().contains("vnodes    2\n"), c::toString);
    assertTrue(c.out().endsWith("\nSHARD  VNODES  EPOCHS\ns1     2       1-4\ns2     2       2\n"), c::toString);
    ok(g);
    assertTrue(g.out().contains("default   eu\n"), g::toString);
    assertTrue(g.out().endsWith("\nREGION  SHARD  EPOCH  DEFAULT\neu      s1     1      yes\nus      s2     1\n"),
        g::toString);
  }

  // ---- lookups

  @Test
  void lookupOneIntKeyUsesLookupAndShowsTheRoute() {
    fake.answer("ListKeyspaces", keyspaces());
    fake.answer("Lookup", LookupResponse.newBuilder()
        .setRoute(Route.newBuilder().setShard("shard1").setEpoch(4)
            .setRange(KeyRange.newBuilder().setEnd(intKey(0))))
        .setShard(shard("shard1", 5433))
        .setFreshness(Freshness.newBuilder().setRevision(40).setEtcdQuorum(io.shardmap.proto.v1.EtcdQuorum.ETCD_QUORUM_REACHABLE)).build());

    Result r = fake.run("lookup", "users", "-42");

    ok(r);
    assertEquals(LookupRequest.newBuilder().setKeyspace("users").setKey(intKey(-42)).build(),
        fake.only(LookupRequest.class));
    assertEquals(""
        + "key       -42\n"
        + "shard     shard1\n"
        + "epoch     4\n"
        + "range     ..0\n"
        + "primary   127.0.0.1:5433/shard1\n"
        + "replicas  -\n"
        + "region    -\n"
        + "state     active\n"
        + "revision  40\n", r.out());
  }

  @Test
  void lookupSeveralBytesKeysUsesOneBatchLookup() {
    fake.answer("ListKeyspaces", keyspaces());
    fake.answer("BatchLookup", BatchLookupResponse.newBuilder().addShards("s2").addShards("s1")
        .addShardIndexes(0).addShardIndexes(-1).addShardIndexes(1)
        .addEpochs(3).addEpochs(0).addEpochs(1)
        .setFreshness(Freshness.newBuilder().setRevision(40).setEtcdQuorum(io.shardmap.proto.v1.EtcdQuorum.ETCD_QUORUM_REACHABLE)).build());

    Result r = fake.run("lookup", "tenants", "acme", "0x00ff", "'a b'");

    ok(r);
    BatchLookupRequest req = fake.only(BatchLookupRequest.class);
    assertEquals("tenants", req.getKeyspace());
    assertEquals(List.of(ByteString.copyFromUtf8("acme"), ByteString.copyFrom(new byte[] {0, (byte) 0xff}),
        ByteString.copyFromUtf8("a b")), req.getBytesKeysList());
    assertEquals(0, req.getKeysCount());
    assertEquals(0, req.getIntKeysCount());
    assertEquals(""
        + "KEY     SHARD   EPOCH\n"
        + "'acme'  s2      3\n"
        + "0x00ff  (none)  -\n"
        + "'a b'   s1      1\n", r.out());
  }

  @Test
  void lookupSeveralIntKeysUsesPackedIntKeys() {
    fake.answer("ListKeyspaces", keyspaces());
    fake.answer("BatchLookup", BatchLookupResponse.newBuilder().addShards("s1")
        .addShardIndexes(0).addShardIndexes(0).addEpochs(1).addEpochs(1).build());

    ok(fake.run("lookup", "users", "1", "-9223372036854775808"));

    assertEquals(List.of(1L, Long.MIN_VALUE), fake.only(BatchLookupRequest.class).getIntKeysList());
  }

  @Test
  void lookupKeyThatDoesNotParseIsRejectedBeforeTheLookup() {
    fake.answer("ListKeyspaces", keyspaces());

    Result r = fake.run("lookup", "users", "abc");

    assertEquals(2, r.code(), r::toString);
    assertEquals("error: INVALID_ARGUMENT: key: 'abc' is not a 64-bit integer\n", r.err());
    assertEquals(List.of(), fake.all(LookupRequest.class));
  }

  @Test
  void lookupInUnknownKeyspaceIsNotFound() {
    fake.answer("ListKeyspaces", keyspaces());

    Result r = fake.run("lookup", "nope", "1");

    assertEquals(3, r.code(), r::toString);
    assertTrue(r.err().startsWith("error: NOT_FOUND: keyspace 'nope' does not exist"), r::toString);
  }

  @Test
  void lookupWarnsWhenTheServerCannotReachEtcd() {
    fake.answer("ListKeyspaces", keyspaces());
    fake.answer("Lookup", LookupResponse.newBuilder().setRoute(Route.newBuilder().setShard("s1").setEpoch(1))
        .setFreshness(Freshness.newBuilder().setRevision(40).setAgeMillis(12000).setEtcdQuorum(io.shardmap.proto.v1.EtcdQuorum.ETCD_QUORUM_UNREACHABLE)).build());

    Result r = fake.run("lookup", "users", "5");

    assertEquals(0, r.code(), r::toString);
    assertEquals("warning: the server cannot reach etcd; this answer is from its snapshot at revision 40, "
        + "last confirmed current 12000 ms ago\n", r.err());
  }

  @Test
  void lookupJsonIsTheLookupResponse() throws Exception {
    fake.answer("ListKeyspaces", keyspaces());
    LookupResponse resp = LookupResponse.newBuilder().setRoute(Route.newBuilder().setShard("s1").setEpoch(1))
        .setFreshness(Freshness.newBuilder().setRevision(40).setEtcdQuorum(io.shardmap.proto.v1.EtcdQuorum.ETCD_QUORUM_REACHABLE)).build();
    fake.answer("Lookup", resp);

    // The output option is inherited: it may follow the subcommand.
    Result r = fake.run("lookup", "users", "5", "-o", "json");

    ok(r);
    LookupResponse.Builder parsed = LookupResponse.newBuilder();
    JsonFormat.parser().merge(r.out(), parsed);
    assertEquals(resp, parsed.build());
    assertTrue(r.out().contains("\"epoch\": \"1\""), r::toString);
  }

  // ---- range, hash, ring, directory, geo changes

  @Test
  void rangeSplitMergeReassign() {
    fake.answer("ListKeyspaces", keyspaces());
    RangeAssignment left = RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setEnd(intKey(100)))
        .setShard("s1").setEpoch(2).build();
    RangeAssignment right = RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(intKey(100)))
        .setShard("s1").setEpoch(2).build();
    fake.answer("SplitRange", SplitRangeResponse.newBuilder().setLeft(left).setRight(right).setRevision(5).build());
    fake.answer("MergeRanges", MergeRangesResponse.newBuilder().setMerged(RangeAssignment.newBuilder()
        .setShard("s1").setEpoch(2)).setRevision(6).build());
    fake.answer("ReassignRange", ReassignRangeResponse.newBuilder().setRange(right.toBuilder().setShard("s2")
        .setEpoch(3)).setRevision(7).build());

    Result split = fake.run("range", "split", "users", "100");
    Result merge = fake.run("range", "merge", "users", "100");
    Result reassign = fake.run("range", "reassign", "users", "100..", "s2", "--expected-epoch", "2");

    ok(split);
    assertEquals(SplitRangeRequest.newBuilder().setKeyspace("users").setSplitKey(intKey(100)).build(),
        fake.only(SplitRangeRequest.class));
    assertEquals("split users at 100 (revision 5)\n"
        + "RANGE  SHARD  EPOCH\n"
        + "..100  s1     2\n"
        + "100..  s1     2\n", split.out());
    ok(merge);
    assertEquals(MergeRangesRequest.newBuilder().setKeyspace("users").setBoundary(intKey(100)).build(),
        fake.only(MergeRangesRequest.class));
    assertEquals("merged users at 100 (revision 6)\nRANGE  SHARD  EPOCH\n..     s1     2\n", merge.out());
    ok(reassign);
    assertEquals(ReassignRangeRequest.newBuilder().setKeyspace("users")
        .setRange(KeyRange.newBuilder().setStart(intKey(100))).setShard("s2").setExpectedEpoch(2).build(),
        fake.only(ReassignRangeRequest.class));
    assertTrue(reassign.out().endsWith("100..  s2     3\n"), reassign::toString);
  }

  @Test
  void rangeCommandsParseBytesBoundsWithTheKeyspaceKeyType() {
    KeyspaceSpec names = KeyspaceSpec.newBuilder().setName("names").setKeyType(KeyType.KEY_TYPE_BYTES)
        .setStrategy(Strategy.STRATEGY_RANGE).build();
    fake.answer("ListKeyspaces", ListKeyspacesResponse.newBuilder().addKeyspaces(names).build());
    fake.answer("ReassignRange", ReassignRangeResponse.newBuilder().setRevision(7).build());

    ok(fake.run("range", "reassign", "names", "0x40..'m'", "s2"));

    ReassignRangeRequest req = fake.only(ReassignRangeRequest.class);
    assertEquals(KeyRange.newBuilder().setStart(stringKey("@")).setEnd(stringKey("m")).build(), req.getRange());
    assertEquals(0, req.getExpectedEpoch());
  }

  @Test
  void bucketReassignAndHashReshard() {
    fake.answer("ReassignBucket", ReassignBucketResponse.newBuilder()
        .setBucket(BucketAssignment.newBuilder().setShard("s3").setEpoch(5)).setRevision(9).build());
    fake.answer("GetMap", GetMapResponse.newBuilder().setHash(HashLayout.newBuilder()
        .addBuckets(BucketAssignment.newBuilder().setShard("s1"))
        .addBuckets(BucketAssignment.newBuilder().setShard("s2"))).build());
    fake.answer("ReshardHash", ReshardHashResponse.newBuilder().setMovedFraction(0.5).setRevision(10)
        .setHash(HashLayout.newBuilder().addBuckets(BucketAssignment.newBuilder().setShard("s2").setEpoch(2))
            .addBuckets(BucketAssignment.newBuilder().setShard("s1").setEpoch(2))).build());

    Result bucket = fake.run("bucket", "reassign", "h", "1", "s3", "--expected-epoch", "4");
    Result sameCount = fake.run("hash", "reshard", "h", "s2,s1");

    ok(bucket);
    assertEquals(ReassignBucketRequest.newBuilder().setKeyspace("h").setBucket(1).setShard("s3").setExpectedEpoch(4)
        .build(), fake.only(ReassignBucketRequest.class));
    assertEquals("reassigned bucket 1 of h (revision 9)\nBUCKET  SHARD  EPOCH\n1       s3     5\n", bucket.out());
    ok(sameCount);
    assertEquals(List.of("s2", "s1"), fake.only(ReshardHashRequest.class).getBucketsList());
    assertEquals("resharded h into 2 buckets (revision 10)\n"
        + "moved 50.00% of the key space to a new owner\n"
        + "BUCKET  SHARD  EPOCH\n"
        + "0       s2     2\n"
        + "1       s1     2\n", sameCount.out());
  }

  @Test
  void hashReshardChangingTheBucketCountNeedsYes() {
    fake.answer("GetMap", GetMapResponse.newBuilder().setHash(HashLayout.newBuilder()
        .addBuckets(BucketAssignment.newBuilder().setShard("s1"))
        .addBuckets(BucketAssignment.newBuilder().setShard("s2"))).build());
    fake.answer("ReshardHash", ReshardHashResponse.newBuilder().setMovedFraction(0.66).setRevision(10).build());

    Result refused = fake.run("hash", "reshard", "h", "s1", "s2", "s3");
    assertEquals(2, refused.code(), refused::toString);
    assertTrue(refused.err().contains("changes the bucket count of h from 2 to 3: a full re-hash moving about "
        + "66.67% of the keys; pass --yes"), refused::toString);
    assertEquals(List.of(), fake.all(ReshardHashRequest.class));

    Result done = fake.run("hash", "reshard", "h", "s1", "s2", "s3", "--yes");
    ok(done);
    assertEquals(List.of("s1", "s2", "s3"), fake.only(ReshardHashRequest.class).getBucketsList());
    assertEquals(1, fake.all(GetMapRequest.class).size(), "--yes skips the bucket count check");
  }

  @Test
  void ringAddAndRemove() {
    RingLayout ring = RingLayout.newBuilder().addShards(RingShard.newBuilder().setShard("s1").addVnodeEpochs(1))
        .build();
    fake.answer("AddRingNodes", AddRingNodesResponse.newBuilder().setRing(ring).setMovedFraction(0.25)
        .setRevision(3).build());
    fake.answer("RemoveRingNodes", RemoveRingNodesResponse.newBuilder().setRing(ring).setRevision(4).build());

    Result add = fake.run("ring", "add", "c", "s4", "--vnodes", "16");
    Result remove = fake.run("ring", "remove", "c", "s4");
    Result negative = fake.run("ring", "remove", "c", "s4", "--vnodes", "-1");

    ok(add);
    assertEquals(AddRingNodesRequest.newBuilder().setKeyspace("c").setShard("s4").setVnodes(16).build(),
        fake.only(AddRingNodesRequest.class));
    assertTrue(add.out().contains("moved 25.00% of the key space"), add::toString);
    ok(remove);
    assertEquals(RemoveRingNodesRequest.newBuilder().setKeyspace("c").setShard("s4").build(),
        fake.only(RemoveRingNodesRequest.class));
    assertEquals(2, negative.code(), negative::toString);
  }

  @Test
  void directoryPutDeleteFallback() {
    fake.answer("ListKeyspaces", keyspaces());
    fake.answer("PutDirectoryEntries", PutDirectoryEntriesResponse.newBuilder()
        .addEntries(DirectoryEntry.newBuilder().setKey(stringKey("a=b")).setShard("s2").setEpoch(3))
        .addEntries(DirectoryEntry.newBuilder().setKey(stringKey("acme")).setShard("s1").setEpoch(3))
        .setRevision(11).build());
    fake.answer("DeleteDirectoryEntries", DeleteDirectoryEntriesResponse.newBuilder().setDeleted(1)
        .setRevision(12).build());
    fake.answer("SetDirectoryFallback",
        SetDirectoryFallbackResponse.newBuilder().setDirectory(DirectoryLayout.newBuilder().setFallbackShard("s9")
            .setFallbackEpoch(4)).setRevision(13).build(),
        SetDirectoryFallbackResponse.newBuilder().setRevision(14).build());

    Result put = fake.run("directory", "put", "tenants", "a=b=s2", "acme=s1");
    Result delete = fake.run("directory", "delete", "tenants", "acme", "0x01");
    Result fallback = fake.run("directory", "fallback", "tenants", "s9");
    Result clear = fake.run("directory", "fallback", "tenants", "--clear");
    Result neither = fake.run("directory", "fallback", "tenants");

    ok(put);
    PutDirectoryEntriesRequest p = fake.only(PutDirectoryEntriesRequest.class);
    assertEquals(List.of(
        DirectoryEntry.newBuilder().setKey(stringKey("a=b")).setShard("s2").build(),
        DirectoryEntry.newBuilder().setKey(stringKey("acme")).setShard("s1").build()), p.getEntriesList());
    assertEquals("put 2 entries into tenants (revision 11)\n"
        + "KEY     SHARD  EPOCH\n"
        + "'a=b'   s2     3\n"
        + "'acme'  s1     3\n", put.out());
    ok(delete);
    assertEquals(List.of(stringKey("acme"), Key.newBuilder().setBytesKey(ByteString.copyFrom(new byte[] {1})).build()),
        fake.only(DeleteDirectoryEntriesRequest.class).getKeysList());
    assertEquals("deleted 1 of 2 entries from tenants (revision 12)\n", delete.out());
    ok(fallback);
    ok(clear);
    List<SetDirectoryFallbackRequest> f = fake.all(SetDirectoryFallbackRequest.class);
    assertEquals(List.of("s9", ""), f.stream().map(SetDirectoryFallbackRequest::getShard).toList());
    assertEquals("fallback of tenants is s9 (epoch 4, revision 13)\n", fallback.out());
    assertEquals("tenants has no fallback shard now (revision 14)\n", clear.out());
    assertEquals(2, neither.code(), neither::toString);
    assertEquals(2, f.size(), "the usage error sent nothing");
  }

  @Test
  void regionSetAndRemove() {
    GeoLayout geo = GeoLayout.newBuilder().setDefaultRegion("ap")
        .addRegions(RegionAssignment.newBuilder().setRegion("ap").setShard("s3").setEpoch(2)).build();
    fake.answer("SetRegion", SetRegionResponse.newBuilder().setGeo(geo).setRevision(5).build());
    fake.answer("RemoveRegion", RemoveRegionResponse.newBuilder().setGeo(geo).setRevision(6).build());

    Result set = fake.run("region", "set", "g", "ap", "s3", "--default");
    Result remove = fake.run("region", "remove", "g", "eu");

    ok(set);
    assertEquals(SetRegionRequest.newBuilder().setKeyspace("g").setRegion("ap").setShard("s3").setMakeDefault(true)
        .build(), fake.only(SetRegionRequest.class));
    assertEquals("routed region ap of g to s3 (revision 5)\n"
        + "REGION  SHARD  EPOCH  DEFAULT\n"
        + "ap      s3     2      yes\n", set.out());
    ok(remove);
    assertEquals(RemoveRegionRequest.newBuilder().setKeyspace("g").setRegion("eu").build(),
        fake.only(RemoveRegionRequest.class));
  }

  @Test
  void jsonOutputOfAMutationIsItsResponse() throws Exception {
    RegisterShardResponse resp = RegisterShardResponse.newBuilder().setShard(shard("s1", 1)).setRevision(2).build();
    fake.answer("RegisterShard", resp);

    Result r = fake.run("--output=json", "shard", "register", "s1", "--host", "h", "--port", "1", "--database", "d");

    ok(r);
    RegisterShardResponse.Builder parsed = RegisterShardResponse.newBuilder();
    JsonFormat.parser().merge(r.out(), parsed);
    assertEquals(resp, parsed.build());
    assertFalse(r.out().contains("registered"), r::toString);
  }

  @Test
  void textKeysRoundTripThroughTheParser() {
    byte[][] keys = {"plain".getBytes(StandardCharsets.UTF_8), "a..b".getBytes(StandardCharsets.UTF_8),
      {0, 1, (byte) 0xff}, "it's".getBytes(StandardCharsets.UTF_8), "0xzz".getBytes(StandardCharsets.UTF_8)};
    for (byte[] k : keys) {
      String shown = Text.key(KeyType.KEY_TYPE_BYTES, k);
      assertEquals(ByteString.copyFrom(k),
          ByteString.copyFrom(io.shardmap.core.KeyRange.parseKey(KeyType.KEY_TYPE_BYTES, shown, "k")), shown);
    }
    assertEquals("0x612e2e62", Text.key(KeyType.KEY_TYPE_BYTES, "a..b".getBytes(StandardCharsets.UTF_8)));
    assertEquals("'plain'", Text.key(KeyType.KEY_TYPE_BYTES, "plain".getBytes(StandardCharsets.UTF_8)));
  }
}
