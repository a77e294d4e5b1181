package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.cli.CtlRun.Result;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code shardmapctl sequence create|show|list} against a real directory server on real etcd: what they
 * print, the exit codes of a duplicate, an unknown sequence and bad input, and that a refused create stores
 * nothing.
 */
@Tag("integration")
class SequenceCommandsTest {
  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().sockets().shards(0).servers(1).extension();

  Result ctl(String... args) {
    return CtlRun.as(fleet.get().targets().get(0), "nobody", null, args);
  }

  @Test
  void createShowList() {
    Result c = ctl("sequence", "create", "orders", "--start", "1000", "--block-size", "50");
    assertEquals(0, c.code(), c.err());
    assertTrue(c.out().startsWith("created sequence orders (revision "), c.out());
    assertTrue(c.out().contains("NAME") && c.out().contains("1000") && c.out().contains("50"), c.out());
    assertEquals(0, ctl("sequence", "create", "invoices").code());

    Result show = ctl("sequence", "show", "orders");
    assertEquals(0, show.code(), show.err());
    assertTrue(show.out().matches("(?s).*next\\s+1000 .*"), show.out());
    assertTrue(show.out().matches("(?s).*default block size\\s+50\\n.*"), show.out());

    Result list = ctl("sequence", "list");
    assertEquals(0, list.code(), list.err());
    String[] lines = list.out().strip().split("\n");
    assertEquals(3, lines.length, list.out());
    assertTrue(lines[1].startsWith("invoices") && lines[2].startsWith("orders"), list.out());

    Result json = ctl("-o", "json", "sequence", "show", "invoices");
    assertEquals(0, json.code(), json.err());
    assertTrue(json.out().contains("\"nextValue\": \"1\"") && json.out().contains("\"defaultBlockSize\": 1000"),
        json.out());
  }

  @Test
  void refusalsExitWithTheirCodeAndStoreNothing() {
    assertEquals(0, ctl("sequence", "create", "orders").code());
    Result dup = ctl("sequence", "create", "orders", "--start", "7");
    assertEquals(4, dup.code(), dup.err());
    assertTrue(dup.err().contains("ALREADY_EXISTS") && dup.err().contains("orders"), dup.err());
    assertTrue(ctl("sequence", "show", "orders").out().matches("(?s).*start\\s+1\\n.*"));

    Result missing = ctl("sequence", "show", "nosuch");
    assertEquals(3, missing.code(), missing.err());
    assertTrue(missing.err().contains("sequence 'nosuch' does not exist"), missing.err());

    Result badName = ctl("sequence", "create", "Bad_Name");
    assertEquals(2, badName.code(), badName.err());
    assertTrue(badName.err().contains("name"), badName.err());
    Result badStart = ctl("sequence", "create", "neg", "--start", "-5");
    assertEquals(2, badStart.code(), badStart.err());
    assertTrue(badStart.err().contains("start"), badStart.err());
    Result zero = ctl("sequence", "create", "zero", "--block-size", "0");
    assertEquals(2, zero.code(), zero.err());
    assertTrue(zero.err().contains("--block-size"), zero.err());

    String listed = ctl("sequence", "list").out();
    assertEquals(2, listed.strip().split("\n").length, listed);
  }
}
