package io.shardmap.client.internal.txn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Which SQL a cross-shard work may not send, by its first keyword, and the gid's coordinator part. */
@Tag("unit")
class GuardedConnectionTest {
  @Test
  void statementsThatEndTheTransactionAreRecognised() {
    for (String sql : List.of("COMMIT", "commit work", "  END", "end transaction", "ABORT", "ROLLBACK",
        "rollback work", "ROLLBACK AND CHAIN", "PREPARE TRANSACTION 'x'", "prepare\ttransaction 'y'",
        "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'", "/* note */ COMMIT", "-- why\nCOMMIT", "COMMIT;")) {
      assertTrue(GuardedConnection.endsTransaction(sql), sql);
    }
    for (String sql : List.of("ROLLBACK TO SAVEPOINT a", "rollback to a", "ROLLBACK WORK TO SAVEPOINT a",
        "ROLLBACK TRANSACTION TO a", "SAVEPOINT a", "RELEASE SAVEPOINT a", "UPDATE t SET committed = true",
        "SELECT 'COMMIT'", "committee", "ENDPOINT", "PREPARE q AS SELECT 1", "INSERT INTO abort_log VALUES (1)",
        "")) {
      assertFalse(GuardedConnection.endsTransaction(sql), sql);
    }
    assertFalse(GuardedConnection.endsTransaction(null));
  }

  @Test
  void theCoordinatorPartOfAGidIsMadeFromAnyClientId() {
    assertEquals("host-1-1234-abc", TxnCoordinator.coordinatorId("host.1:1234-abc"));
    String long1 = TxnCoordinator.coordinatorId("a".repeat(100));
    String long2 = TxnCoordinator.coordinatorId("a".repeat(99) + "b");
    assertEquals(40, long1.length());
    assertFalse(long1.equals(long2), "distinct long ids stay distinct");
    assertTrue(long1.matches("[A-Za-z0-9_-]{1,40}"));
  }
}
