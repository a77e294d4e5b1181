package io.shardmap.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.StringWriter;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's "Use it from your service" code compiles against the SDK as it is, and still shows the
 * calls the example service makes; so does the transfer of "Transactions across shards", which is the
 * example's {@link AccountStore#transfer}; deploy/local/up.sh creates what the transfer needs; the user-id
 * scheme the smoke test relies on stays as documented.
 */
@Tag("unit")
class ReadmeSnippetTest {
  static final String SECTION = "## Use it from your service";
  static final String TRANSACTIONS = "## Transactions across shards";
  static final String IDS_AND_REFERENCES = "## Global ids and reference tables";

  static Path readme() {
    Path dir = Path.of(System.getProperty("basedir", System.getProperty("user.dir"))).toAbsolutePath();
    for (Path p = dir; p != null; p = p.getParent()) {
      if (Files.isRegularFile(p.resolve("README.md")) && Files.isDirectory(p.resolve("examples"))) {
        return p.resolve("README.md");
      }
    }
    throw new AssertionError("no README.md above " + dir);
  }

  /** The first ```java block of the section "Use it from your service". */
  static String snippet() throws Exception {
    return snippet(SECTION);
  }

  /** The first ```java block of the README's section {@code heading}. */
  static String snippet(String heading) throws Exception {
    return snippet(heading, 0);
  }

  /** The {@code index}-th (from 0) ```java block of the README's section {@code heading}. */
  static String snippet(String heading, int index) throws Exception {
    String md = Files.readString(readme(), StandardCharsets.UTF_8);
    int section = md.indexOf("\n" + heading + "\n");
    assertTrue(section >= 0, "README.md has a section '" + heading + "'");
    int start = md.indexOf("```java\n", section);
    for (int i = 0; i < index && start >= 0; i++) {
      start = md.indexOf("```java\n", start + 1);
    }
    int next = md.indexOf("\n## ", section + 1);
    assertTrue(start > 0 && (next < 0 || start < next), "the section has a ```java block");
    start += "```java\n".length();
    return md.substring(start, md.indexOf("```", start));
  }

  @Test
  void theReadmeSnippetCompiles(@TempDir Path tmp) throws Exception {
    assertCompiles(tmp, snippet());
  }

  /**
   * The transfer of "Transactions across shards" compiles as the body of a method given what its first
   * comment says it has (the ShardmapData, two users' ids and an amount).
   */
  @Test
  void theTransferSnippetCompiles(@TempDir Path tmp) throws Exception {
    String body = snippet(TRANSACTIONS);
    assertTrue(body.startsWith("// data: a ShardmapData (above); from, to: two users' ids; amount > 0\n"), body);
    assertCompiles(tmp, String.join("\n",
        "import io.shardmap.client.ShardmapData;",
        "import java.sql.Connection;",
        "import java.sql.PreparedStatement;",
        "import java.sql.SQLException;",
        "import java.util.UUID;",
        "public class TransferSnippet {",
        "  static void transfer(ShardmapData data, long from, long to, long amount) throws SQLException {",
        body,
        "  }",
        "}"));
  }

  /** The global ids of "Global ids and reference tables" compile given what its first comment says it has. */
  @Test
  void theGlobalIdsSnippetCompiles(@TempDir Path tmp) throws Exception {
    String body = snippet(IDS_AND_REFERENCES, 0);
    assertTrue(body.startsWith("// client: a ShardmapClient, data: a ShardmapData (above); name: a new user's name\n"),
        body);
    assertTrue(body.contains("IdLayout.builder().spreadBits(3).build()"), "the example's layout: " + body);
    assertEquals(SignupCommand.LAYOUT.spreadBits(), 3, "the README shows the example's layout");
    assertCompiles(tmp, String.join("\n",
        "import io.shardmap.client.GlobalIds;",
        "import io.shardmap.client.ShardKey;",
        "import io.shardmap.client.ShardmapClient;",
        "import io.shardmap.client.ShardmapData;",
        "import io.shardmap.core.ids.IdLayout;",
        "import java.sql.PreparedStatement;",
        "import java.sql.SQLException;",
        "public class IdsSnippet {",
        "  static void signup(ShardmapClient client, ShardmapData data, String name) throws SQLException {",
        body,
        "  }",
        "}"));
  }

  /** ... and its reference-table write and cross-shard join compile too. */
  @Test
  void theReferenceTableSnippetCompiles(@TempDir Path tmp) throws Exception {
    String body = snippet(IDS_AND_REFERENCES, 1);
    assertTrue(body.startsWith("// data: a ShardmapData (above)\n"), body);
    assertCompiles(tmp, String.join("\n",
        "import io.shardmap.client.CrossShardQuery;",
        "import io.shardmap.client.QueryResult;",
        "import io.shardmap.client.ShardmapData;",
        "import java.sql.PreparedStatement;",
        "import java.sql.SQLException;",
        "public class ReferenceSnippet {",
        "  static void countries(ShardmapData data) throws SQLException {",
        body,
        "  }",
        "}"));
  }

  /** up.sh declares the example's reference table and runs signup and countries, as the README says. */
  @Test
  void upShDeclaresCountriesAndRunsSignupAndCountries() throws Exception {
    String up = Files.readString(readme().resolveSibling("deploy/local/up.sh"), StandardCharsets.UTF_8);
    for (String s : List.of("reference add countries --keyspace users --source shard1",
        "CREATE TABLE IF NOT EXISTS countries (code text PRIMARY KEY, name text NOT NULL)",
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS country text", "signup Ada Grace --country fr",
        "countries --set it Italy")) {
      assertTrue(up.contains(s), "up.sh lacks " + s);
    }
  }

  /** ... and is the example's transfer: the same SQL, keyspace and row order as AccountStore's. */
  @Test
  void theTransferSnippetIsTheExamplesTransfer() throws Exception {
    String body = snippet(TRANSACTIONS);
    for (String s : java.util.List.of("data.acrossShards(tx -> {", "tx.connection(\"accounts\", id)",
        "new long[] {Math.min(from, to), Math.max(from, to)}", "long delta = id == from ? -amount : amount;",
        "\"" + AccountStore.MOVE_SQL + "\"", "\"" + AccountStore.LEDGER_SQL + "\"", "ps.setObject(2, transferId);",
        "ps.setLong(4, id == from ? to : from);", "UUID transferId = UUID.randomUUID();")) {
      assertTrue(body.contains(s), "the README's transfer lacks " + s + ":\n" + body);
    }
  }

  /** deploy/local/up.sh creates the tables and the keyspace the transfer command uses, as the example defines them. */
  @Test
  void upShCreatesTheAccountsAsTheExampleDefinesThem() throws Exception {
    String up = Files.readString(readme().resolveSibling("deploy/local/up.sh"), StandardCharsets.UTF_8);
    for (String ddl : AccountStore.ddl("accounts", "ledger")) {
      assertTrue(up.contains("-c \"" + ddl + "\""), "up.sh lacks " + ddl);
    }
    assertTrue(up.contains("create_keyspace accounts --table accounts:user_id --table ledger:user_id"), up);
    assertTrue(up.contains("transfer 1 2 100 --either-way"), "up.sh runs the transfer demo");
  }

  private static void assertCompiles(Path tmp, String code) throws Exception {
    var m = java.util.regex.Pattern.compile("public class (\\w+)").matcher(code);
    assertTrue(m.find(), "the snippet is a public class: " + code);
    Path src = tmp.resolve(m.group(1) + ".java");
    Files.writeString(src, code);
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    assertNotNull(javac, "a JDK, not a JRE");
    StringWriter diagnostics = new StringWriter();
    int rc = javac.getTask(diagnostics, null, null,
        List.of("--release", "17", "-Xlint:all,-path,-processing", "-Werror", "-proc:none", "-classpath", classpath(), "-d",
            tmp.resolve("classes").toString()),
        null, javac.getStandardFileManager(null, null, StandardCharsets.UTF_8).getJavaFileObjects(src.toFile()))
        .call() ? 0 : 1;
    assertEquals(0, rc, "the README snippet does not compile:\n" + diagnostics + "\n" + code);
    assertTrue(Files.isRegularFile(tmp.resolve("classes").resolve(m.group(1) + ".class")));
  }

  @Test
  void theSnippetMakesTheCallsTheExampleMakes() throws Exception {
    String code = snippet();
    for (String call : List.of("ClientOptions.builder()", ".targets(", ".keyspaces(", "ShardmapClient.start(",
        "ShardmapData.open(", "DataOptions.builder().user(", "data.inTransaction(", "data.read(",
        "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING (xmax = 0)", "SELECT name FROM users WHERE id = ?")) {
      assertTrue(code.contains(call), "README snippet lacks " + call);
    }
  }

  @Test
  void userIdsAreDistinctAndSpreadAndAvoidTheRangeTheSmokeTestReassigns() {
    Set<Long> seen = new LinkedHashSet<>();
    long negative = 0;
    for (long n = 1; n <= 100_000; n++) {
      long id = UsersExample.userId(n);
      assertTrue(seen.add(id), "user " + n + " repeats an id");
      // deploy/local/smoke.sh reassigns [1000, 2000) while the example runs and expects no users there.
      assertTrue(id < 1000 || id >= 2000, "user " + n + " has id " + id);
      negative += id < 0 ? 1 : 0;
    }
    assertTrue(negative > 45_000 && negative < 55_000, "ids spread over the signed key space: " + negative);
    assertEquals(-2152535657050944081L, UsersExample.userId(1), "user 1's id is fixed (reruns update it)");
  }

  /** The test classpath (Surefire sets java.class.path to it), plus where the SDK's classes came from. */
  private static String classpath() throws URISyntaxException {
    Set<String> entries = new LinkedHashSet<>(List.of(System.getProperty("java.class.path").split(File.pathSeparator)));
    for (Class<?> c : List.of(io.shardmap.client.ShardmapClient.class, io.shardmap.core.Route.class,
        io.shardmap.proto.v1.Shard.class, com.google.protobuf.Message.class)) {
      entries.add(Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString());
    }
    return String.join(File.pathSeparator, entries);
  }
}
