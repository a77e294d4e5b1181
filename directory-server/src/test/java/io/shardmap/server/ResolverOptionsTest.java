package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The transaction resolver's flags: defaults, values, and bad values refused naming the flag. */
@Tag("unit")
class ResolverOptionsTest {

  @Test
  void withoutARoleThereIsNoResolverAndTheDefaultsStand() {
    ServerOptions o = Main.parse();
    assertNull(o.resolverDbUser());
    assertNull(o.resolverDbPassword());
    assertEquals(Duration.ofSeconds(1), o.txnResolveInterval());
    assertEquals(Duration.ofSeconds(2), o.txnAbortAfter());
    assertEquals(Duration.ofSeconds(5), o.txnResolverLeaseTtl());
  }

  @Test
  void theRoleAndThePasswordFileAreRead(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("pw");
    Files.writeString(file, "s3cret pass\n");
    ServerOptions o = Main.parse("--resolver-db-user", "app", "--resolver-db-password-file", file.toString(),
        "--txn-resolve-interval", "200ms", "--txn-abort-after", "750ms", "--txn-resolver-lease-ttl", "3s");
    assertEquals("app", o.resolverDbUser());
    assertEquals("s3cret pass", o.resolverDbPassword(), "the line end is not part of the password");
    assertEquals(Duration.ofMillis(200), o.txnResolveInterval());
    assertEquals(Duration.ofMillis(750), o.txnAbortAfter());
    assertEquals(Duration.ofSeconds(3), o.txnResolverLeaseTtl());
    Files.writeString(file, "crlf\r\nsecond line ignored\n");
    assertEquals("crlf", Main.parse("--resolver-db-user", "app", "--resolver-db-password-file", file.toString())
        .resolverDbPassword());
    assertNull(Main.parse("--resolver-db-user", "app").resolverDbPassword(), "no file: no password");
  }

  @Test
  void badValuesAreRefusedNamingTheFlag(@TempDir Path dir) throws Exception {
    refused("'--txn-resolve-interval'", "--txn-resolve-interval", "0s");
    refused("'--txn-resolve-interval'", "--txn-resolve-interval", "-1s");
    refused("'--txn-abort-after'", "--txn-abort-after", "0ms");
    refused("'--txn-abort-after'", "--txn-abort-after", "soon");
    refused("'--txn-resolver-lease-ttl'", "--txn-resolver-lease-ttl", "0s");
    refused("resolver-db-password-file: cannot read", "--resolver-db-user", "app",
        "--resolver-db-password-file", dir.resolve("missing").toString());
    refused("resolver-db-password-file: cannot read", "--resolver-db-user", "app",
        "--resolver-db-password-file", dir.toString());
    Path empty = dir.resolve("empty");
    Files.writeString(empty, "\n");
    refused("resolver-db-password-file: '" + empty + "' holds no password", "--resolver-db-user", "app",
        "--resolver-db-password-file", empty.toString());
    Path pw = dir.resolve("pw");
    Files.writeString(pw, "x");
    refused("resolver-db-password-file: given without --resolver-db-user", "--resolver-db-password-file",
        pw.toString());
    refused("resolver-db-user:", "--resolver-db-user", " ");
    refused("resolver-db-user:", "--resolver-db-user", "x".repeat(64));
    // The resolver needs the prefix to make a transaction namespace (at most 40 characters).
    refused("etcd-prefix: the transaction resolver needs", "--resolver-db-user", "app", "--etcd-prefix",
        "/" + "p".repeat(41));
    // The builder refuses what the flags' grammar would let through.
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ServerOptions.builder().txnAbortAfter(Duration.ZERO));
    assertTrue(e.getMessage().startsWith("txn-abort-after:"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ServerOptions.builder().txnResolveInterval(null));
    assertTrue(e.getMessage().startsWith("txn-resolve-interval:"), e.getMessage());
  }

  private static void refused(String expected, String... args) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Main.parse(args));
    assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
  }
}
