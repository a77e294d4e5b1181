package io.shardmap.client.internal.txn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.internal.Counters;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.ListReferenceTablesResponse;
import io.shardmap.proto.v1.ReferenceTable;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The SDK's reference records and table names without servers: PostgreSQL's reading of a qualified name,
 * which forms match a record, the cache read once and again only for a table it lacks, the newer of two
 * racing answers kept, and the declaration sent with a statement.
 */
@Tag("unit")
class ReferenceRecordsTest {
  private static ReferenceTable t(String name, long epoch) {
    return ReferenceTable.newBuilder().setTable(name).addKeyspaces("users").addCopies("s1").setEpoch(epoch).build();
  }

  private static ListReferenceTablesResponse answer(long revision, ReferenceTable... tables) {
    return ListReferenceTablesResponse.newBuilder().setRevision(revision).addAllTables(List.of(tables)).build();
  }

  @Test
  void namesAreReadAsPostgresqlReadsThem() {
    assertEquals(new ReferenceNames.Parsed("public", "countries"), ReferenceNames.parse("table", "Public.COUNTRIES"));
    assertEquals(new ReferenceNames.Parsed(null, "countries"), ReferenceNames.parse("table", " countries "));
    assertEquals(new ReferenceNames.Parsed("ops", "My \"Flags\""), ReferenceNames.parse("table", "ops.\"My \"\"Flags\"\"\""));
    assertEquals(new ReferenceNames.Parsed("a.b", "c"), ReferenceNames.parse("table", "\"a.b\".c"));
    for (String bad : List.of("", " ", "a.b.c", "\"x", "\"\"", "a..b", ".a", "a.", "two words", "\"a\"b")) {
      ShardmapException e = assertThrows(ShardmapException.class, () -> ReferenceNames.parse("table", bad), bad);
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), bad);
      assertTrue(e.getMessage().startsWith("table"), e.getMessage());
    }
  }

  @Test
  void aRecordMatchesEveryFormOfItsNameAndIsReadOnce() {
    Deque<ListReferenceTablesResponse> answers = new ArrayDeque<>(List.of(
        answer(10, t("public.countries", 1), t("ops.\"Flags\"", 3), t("ops.countries", 1))));
    Counters stats = new Counters();
    ReferenceRecords r = new ReferenceRecords(ks -> answers.pop(), stats);
    assertEquals("public.countries", r.record("users", "public.countries").getTable());
    assertEquals("public.countries", r.record("users", "PUBLIC.Countries").getTable());
    assertEquals("ops.\"Flags\"", r.record("users", "ops.\"Flags\"").getTable());
    assertEquals("ops.\"Flags\"", r.record("users", "\"Flags\"").getTable());
    assertEquals(1, stats.referenceFetches(), "one read: every later answer came from the snapshot");
    // Unqualified, two schemas have it: ambiguous, said with both names.
    ShardmapException e = assertThrows(ShardmapException.class, () -> r.record("users", "countries"));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().contains("ops.countries, public.countries"), e.getMessage());
    // "flags" folds to lower case, which is not "Flags": read again (it may be new), then NOT_FOUND.
    answers.add(answer(11, t("public.countries", 1)));
    e = assertThrows(ShardmapException.class, () -> r.record("users", "ops.flags"));
    assertEquals(ErrorCode.NOT_FOUND, e.code());
    assertTrue(e.getMessage().contains("'ops.flags' is not a reference table of keyspace 'users'")
        && e.getMessage().contains("[public.countries]"), e.getMessage());
    assertEquals(2, stats.referenceFetches());
  }

  @Test
  void anOlderAnswerNeverReplacesANewerOne() {
    Deque<ListReferenceTablesResponse> answers = new ArrayDeque<>(List.of(answer(20, t("public.c", 2)),
        answer(15, t("public.c", 1))));
    ReferenceRecords r = new ReferenceRecords(ks -> answers.pop(), new Counters());
    assertEquals(2, r.refresh("users", "public.c").getEpoch());
    assertEquals(2, r.refresh("users", "public.c").getEpoch(), "the answer at revision 15 came late");
    answers.add(answer(30));
    assertNull(r.refresh("users", "public.c"), "removed");
  }

  @Test
  void theDeclarationTravelsWithTheLockTimeoutInOneStatement() {
    Participant.Marks m = new Participant.Marks();
    assertNull(GuardedConnection.pendingSettings(m));
    m.lockTimeoutMs = 300;
    m.declaration = ",public.countries=4,";
    assertEquals("SET LOCAL lock_timeout = '300ms'; SELECT set_config('shardmap.reference_epochs', "
        + "$sm$,public.countries=4,$sm$, true)", GuardedConnection.pendingSettings(m));
    m.lockTimeoutSet = true;
    assertEquals("SELECT set_config('shardmap.reference_epochs', $sm$,public.countries=4,$sm$, true)",
        GuardedConnection.pendingSettings(m));
    m.declarationSent = true;
    assertNull(GuardedConnection.pendingSettings(m));
    assertEquals("$sm0$,x.\"$sm$\"=1,$sm0$", GuardedConnection.dollarQuoted(",x.\"$sm$\"=1,"));
  }
}
