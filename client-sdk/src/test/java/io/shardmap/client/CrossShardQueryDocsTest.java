package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.query.Merge;
import io.shardmap.query.QueryPlanner;
import java.io.File;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The example of docs/client-sdk.md, "Cross-shard queries", compiles against the SDK as it is, and the
 * planner accepts each of its statements (table {@code users} sharded by {@code id}).
 */
@Tag("unit")
class CrossShardQueryDocsTest {
  static final String SECTION = "## Cross-shard queries";

  static String snippet() throws Exception {
    Path dir = Path.of(System.getProperty("basedir", System.getProperty("user.dir"))).toAbsolutePath();
    Path doc = null;
    for (Path p = dir; p != null && doc == null; p = p.getParent()) {
      if (Files.isRegularFile(p.resolve("docs/client-sdk.md"))) {
        doc = p.resolve("docs/client-sdk.md");
      }
    }
    assertNotNull(doc, "no docs/client-sdk.md above " + dir);
    String md = Files.readString(doc, StandardCharsets.UTF_8);
    int section = md.indexOf("\n" + SECTION + "\n");
    assertTrue(section >= 0, "docs/client-sdk.md has a section '" + SECTION + "'");
    int start = md.indexOf("```java\n", section);
    int next = md.indexOf("\n## ", section + 1);
    assertTrue(start > 0 && (next < 0 || start < next), "the section has a ```java block");
    start += "```java\n".length();
    return md.substring(start, md.indexOf("```", start));
  }

  @Test
  void theExampleCompiles(@TempDir Path tmp) throws Exception {
    String code = snippet();
    Matcher m = Pattern.compile("public class (\\w+)").matcher(code);
    assertTrue(m.find(), "the example is a public class: " + code);
    Path src = tmp.resolve(m.group(1) + ".java");
    Files.writeString(src, code);
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    assertNotNull(javac, "a JDK, not a JRE");
    Set<String> cp = new LinkedHashSet<>(List.of(System.getProperty("java.class.path").split(File.pathSeparator)));
    for (Class<?> c : List.of(ShardmapData.class, io.shardmap.core.Route.class)) {
      cp.add(Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString());
    }
    StringWriter diagnostics = new StringWriter();
    boolean ok = javac.getTask(diagnostics, null, null, List.of("--release", "17", "-Xlint:all,-path,-processing",
            "-Werror", "-proc:none", "-classpath", String.join(File.pathSeparator, cp), "-d",
            tmp.resolve("classes").toString()), null,
        javac.getStandardFileManager(null, null, StandardCharsets.UTF_8).getJavaFileObjects(src.toFile())).call();
    assertTrue(ok, "the example does not compile:\n" + diagnostics + "\n" + code);
  }

  @Test
  void thePlannerAcceptsEveryStatementOfTheExample() throws Exception {
    List<String> statements = statements(snippet());
    assertEquals(4, statements.size(), statements.toString());
    QueryPlanner.ShardedTables tables = t -> t.equals("users") ? Optional.of("id")
        : t.equals("orders") ? Optional.of("user_id") : Optional.empty();
    for (String sql : statements) {
      if (sql.contains("DISTINCT ON")) {
        // The example's explicit merge: what the derived planner refuses, and why the merge is given.
        assertThrows(io.shardmap.core.ShardmapException.class, () -> QueryPlanner.plan(sql, tables));
        QueryPlanner.plan(sql, tables, Merge.orderedBy(Merge.asc("user_id")).limit(100));
      } else {
        QueryPlanner.plan(sql, tables);
      }
    }
  }

  /** The SQL of each {@code CrossShardQuery.builder("users", "..." + "...")}: its string literals joined. */
  static List<String> statements(String code) {
    List<String> out = new ArrayList<>();
    Matcher m = Pattern.compile("CrossShardQuery\\.builder\\(\"users\",((?:\\s*\\+?\\s*\"(?:[^\"\\\\]|\\\\.)*\")+)\\s*\\)")
        .matcher(code);
    while (m.find()) {
      StringBuilder sql = new StringBuilder();
      Matcher lit = Pattern.compile("\"((?:[^\"\\\\]|\\\\.)*)\"").matcher(m.group(1));
      while (lit.find()) {
        sql.append(lit.group(1));
      }
      out.add(sql.toString());
    }
    return out;
  }
}
