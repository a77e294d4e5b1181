package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.shardmap.cli.FakeDirectory.Result;
import io.shardmap.proto.v1.DropKeyspaceRequest;
import io.shardmap.proto.v1.ListShardsResponse;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Exit codes, error messages, deadlines and the global options. */
@Tag("unit")
@Timeout(30)
class ErrorsAndOptionsTest {
  private final FakeDirectory fake = new FakeDirectory();

  @AfterEach
  void close() {
    fake.close();
  }

  @ParameterizedTest
  @CsvSource({
    "INVALID_ARGUMENT, 2",
    "NOT_FOUND, 3",
    "ALREADY_EXISTS, 4",
    "FAILED_PRECONDITION, 4",
    "UNAVAILABLE, 5",
    "DEADLINE_EXCEEDED, 5",
    "ABORTED, 7",
    "INTERNAL, 1",
    "PERMISSION_DENIED, 1",
  })
  void serverStatusBecomesMessageAndExitCode(Status.Code code, int exit) {
    fake.answer("DropKeyspace", Status.fromCode(code).withDescription("keyspace 'users': it broke"));

    Result r = fake.run("keyspace", "drop", "users");

    assertEquals(exit, r.code(), r::toString);
    assertEquals("", r.out());
    String suffix = code == Status.Code.UNAVAILABLE || code == Status.Code.DEADLINE_EXCEEDED
        ? " [server 127.0.0.1:7700]" : "";
    assertEquals("error: " + code.name() + ": keyspace 'users': it broke" + suffix + "\n", r.err());
    assertEquals("users", fake.only(DropKeyspaceRequest.class).getName());
  }

  @Test
  void aServerThatDoesNotAnswerInTimeIsDeadlineExceeded() {
    fake.answer("ListShards", FakeDirectory.HANG);

    long start = System.nanoTime();
    Result r = fake.run("shard", "list", "--timeout", "300ms");
    long millis = (System.nanoTime() - start) / 1_000_000;

    assertEquals(5, r.code(), r::toString);
    assertTrue(r.err().startsWith("error: DEADLINE_EXCEEDED: "), r::toString);
    assertTrue(millis >= 250 && millis < 5_000, "took " + millis + " ms");
  }

  @Test
  void unreachableServerIsUnavailable() {
    // A real plaintext channel to a loopback port nobody listens on (port 1 needs root to bind; nothing does).
    java.io.StringWriter out = new java.io.StringWriter();
    java.io.StringWriter err = new java.io.StringWriter();
    int code = ShardmapCtl.run(new String[] {"--server", "127.0.0.1:1", "--timeout", "3s", "shard", "list"},
        Map.of(), ShardmapCtl::plaintextChannel, new java.io.PrintWriter(out), new java.io.PrintWriter(err));

    assertEquals(5, code, err::toString);
    assertTrue(err.toString().startsWith("error: UNAVAILABLE: "), err::toString);
    assertTrue(err.toString().contains("[server 127.0.0.1:1]"), err::toString);
  }

  @Test
  void serverComesFromTheFlagThenTheEnvironmentThenTheDefault() {
    fake.answer("ListShards", ListShardsResponse.getDefaultInstance());

    fake.run("shard", "list");
    fake.run(Map.of("SHARDMAP_SERVER", "127.0.0.1:7710"), "shard", "list");
    fake.run(Map.of("SHARDMAP_SERVER", "127.0.0.1:7710"), "--server", "127.0.0.1:9000", "shard", "list");
    fake.run(Map.of(), "shard", "list", "--server", "localhost:7720");

    assertEquals(List.of("127.0.0.1:7700", "127.0.0.1:7710", "127.0.0.1:9000", "localhost:7720"), fake.targets);
  }

  @Test
  void usageErrorsExitTwoWithoutConnecting() {
    Result unknownCommand = fake.run("shards", "list");
    Result unknownOption = fake.run("shard", "list", "--colour");
    Result noSubcommand = fake.run("range");
    Result badFormat = fake.run("--output", "yaml", "shard", "list");
    Result badTimeout = fake.run("--timeout", "soon", "shard", "list");

    for (Result r : List.of(unknownCommand, unknownOption, noSubcommand, badFormat, badTimeout)) {
      assertEquals(2, r.code(), r::toString);
      assertTrue(r.err().startsWith("error: usage: "), r::toString);
      assertEquals("", r.out(), r::toString);
    }
    assertTrue(noSubcommand.err().contains("Try 'shardmapctl range --help'."), noSubcommand::toString);
    assertTrue(badTimeout.err().contains("'soon' is not a duration"), badTimeout::toString);
    assertEquals(List.of(), fake.targets, "no channel was opened");
  }

  @Test
  void helpIsExitZeroAndListsEveryCommand() {
    Result r = fake.run("--help");

    assertEquals(0, r.code(), r::toString);
    for (String c : List.of("shard", "keyspace", "lookup", "range", "bucket", "hash", "ring", "directory", "region",
        "watch", "query", "count", "sequence")) {
      assertTrue(r.out().contains("\n  " + c + " "), c + " missing in\n" + r.out());
    }
    Result sub = fake.run("keyspace", "create", "--help");
    assertEquals(0, sub.code(), sub::toString);
    assertTrue(sub.out().contains("--range-shards"), sub::toString);
  }

  @Test
  void durations() {
    // --timeout takes the one grammar of every Shardmap CLI (io.shardmap.support.cli.Durations): a unit is
    // required (a bare number used to mean seconds) and zero is refused.
    fake.answer("ListShards", ListShardsResponse.getDefaultInstance());
    for (String ok : List.of("9000ms", "10s", "2m", "1h", "PT10S")) {
      assertEquals(0, fake.run("--timeout", ok, "shard", "list").code(), ok);
    }
    Result bare = fake.run("--timeout", "7", "shard", "list");
    assertEquals(2, bare.code(), bare::toString);
    assertTrue(bare.err().contains("Invalid value for option '--timeout': '7' is not a duration: a number needs a "
        + "unit"), bare::toString);
    Result zero = fake.run("--timeout", "0s", "shard", "list");
    assertEquals(2, zero.code(), zero::toString);
    assertTrue(zero.err().contains("'--timeout'") && zero.err().contains("positive"), zero::toString);
  }
}
