package io.shardmap.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Tag("integration")
class PostgresFixtureTest {

  @Test
  @Timeout(180)
  void sharedShardsAreSeparateWritableDatabases() throws SQLException {
    PostgresFixture fixture = PostgresFixture.shared(2);
    assertSame(fixture, PostgresFixture.shared(1), "one fixture per JVM");
    List<PgInstance> shards = fixture.shards();
    assertTrue(shards.size() >= 2, "asked for 2 shards, got " + shards);
    assertNotEquals(shards.get(0).jdbcUrl(), shards.get(1).jdbcUrl());

    String table = "fixture_test_" + UUID.randomUUID().toString().replace("-", "");
    try {
      for (int i = 0; i < 2; i++) {
        try (Connection connection = shards.get(i).connect(); Statement statement = connection.createStatement()) {
          assertEquals(1, scalarInt(connection, "select 1"));
          statement.execute("create table " + table + " (k text primary key, v text not null)");
          insert(connection, table, "key-" + i, "value-" + i);
          assertEquals("value-" + i, read(connection, table, "key-" + i));
        }
      }
      // Each shard sees only its own row: they are different databases, not one shared one.
      for (int i = 0; i < 2; i++) {
        try (Connection connection = shards.get(i).connect()) {
          assertEquals(1, scalarInt(connection, "select count(*) from " + table));
          assertNull(read(connection, table, "key-" + (1 - i)));
        }
      }
      if (fixture.canControlInstances()) {
        // Servers we start must support logical decoding and two-phase commit.
        try (Connection connection = shards.get(0).connect()) {
          assertEquals("logical", scalarText(connection, "show wal_level"));
          assertEquals("64", scalarText(connection, "show max_prepared_transactions"));
          assertEquals("16", scalarText(connection, "show max_replication_slots"));
          assertEquals(shards.get(0).database(), scalarText(connection, "select current_database()"));
        }
      }
    } finally {
      for (int i = 0; i < 2; i++) {
        try (Connection connection = shards.get(i).connect(); Statement statement = connection.createStatement()) {
          statement.execute("drop table if exists " + table);
        }
      }
    }
  }

  @Test
  @Timeout(180)
  void stoppedShardRefusesConnectionsAndKeepsDataAfterRestart() throws SQLException {
    Instant begin = Instant.now();
    PgInstance second;
    try (PostgresFixture fixture = PostgresFixture.startNew(2)) {
      System.out.println("2 PostgreSQL shards ready " + Duration.between(begin, Instant.now()).toMillis()
          + " ms after startNew(2): " + fixture.describeLogs());
      assumeTrue(fixture.canControlInstances(), "external databases cannot be stopped");
      PgInstance first = fixture.shard(0);
      second = fixture.shard(1);
      for (PgInstance shard : List.of(first, second)) {
        try (Connection connection = shard.connect(); Statement statement = connection.createStatement()) {
          statement.execute("create table fault (k text primary key, v text not null)");
          insert(connection, "fault", "before", shard.database());
        }
      }

      fixture.stop(1);
      assertFalse(fixture.isRunning(1));
      Instant attempt = Instant.now();
      assertThrows(SQLException.class, () -> second.connect().close(), "a stopped shard must refuse connections");
      assertTrue(Duration.between(attempt, Instant.now()).compareTo(Duration.ofSeconds(15)) < 0, "refusal was not bounded");
      try (Connection connection = first.connect()) {
        assertEquals(first.database(), read(connection, "fault", "before"), "the other shard is unaffected");
      }

      fixture.start(1);
      assertTrue(fixture.isRunning(1));
      try (Connection connection = second.connect()) {
        assertEquals(second.database(), read(connection, "fault", "before"), "committed row survives the restart");
        insert(connection, "fault", "after", "x");
        assertEquals("x", read(connection, "fault", "after"));
      }
    }
    assertThrows(SQLException.class, () -> second.connect().close(), "close() must stop the servers");
  }

  @Test
  void malformedExtraSettingsAreRefusedBeforeAnyServerStarts() {
    // A newline would smuggle a second setting into postgresql.conf; a missing " = " is no setting.
    for (String bad : List.of("port = 1\nlisten_addresses = '*'", "max_prepared_transactions=0",
        "Max_Connections = 5", "shared_preload_libraries = a,b")) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> PostgresFixture.startNew(1, List.of(bad)), bad);
      assertTrue(e.getMessage().contains("name = value"), e.getMessage());
    }
  }

  private static void insert(Connection connection, String table, String key, String value) throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement("insert into " + table + " (k, v) values (?, ?)")) {
      statement.setString(1, key);
      statement.setString(2, value);
      assertEquals(1, statement.executeUpdate());
    }
  }

  private static String read(Connection connection, String table, String key) throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement("select v from " + table + " where k = ?")) {
      statement.setString(1, key);
      try (ResultSet rows = statement.executeQuery()) {
        return rows.next() ? rows.getString(1) : null;
      }
    }
  }

  private static int scalarInt(Connection connection, String sql) throws SQLException {
    try (Statement statement = connection.createStatement(); ResultSet rows = statement.executeQuery(sql)) {
      assertTrue(rows.next());
      return rows.getInt(1);
    }
  }

  private static String scalarText(Connection connection, String sql) throws SQLException {
    try (Statement statement = connection.createStatement(); ResultSet rows = statement.executeQuery(sql)) {
      assertTrue(rows.next());
      return rows.getString(1);
    }
  }
}
