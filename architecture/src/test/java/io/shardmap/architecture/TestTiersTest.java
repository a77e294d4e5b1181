package io.shardmap.architecture;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Tags;
import org.junit.jupiter.api.Test;

/**
 * Every test class of every module carries exactly one tier tag (besides, perhaps, {@code slow}, which says
 * only that the default run leaves it out), so that {@code -Dgroups=unit} (and the
 * other tiers) select what docs/architecture.md says they do and no test silently falls outside every tier.
 * Reads the compiled test classes of the sibling modules (a reactor build compiles them before this
 * module's tests run).
 */
@Tag("unit")
class TestTiersTest {
  static final Set<String> TIERS = Set.of("unit", "integration", "fault", "consistency");
  private static final Set<String> TEST_ANNOTATIONS = Set.of("org.junit.jupiter.api.Test",
      "org.junit.jupiter.params.ParameterizedTest", "org.junit.jupiter.api.RepeatedTest",
      "org.junit.jupiter.api.TestFactory");

  @Test
  void everyTestClassHasExactlyOneTierTag() throws IOException {
    Path root = Path.of(System.getProperty("basedir", ".")).toAbsolutePath().getParent();
    List<Path> dirs = new ArrayList<>();
    try (Stream<Path> modules = Files.list(root)) {
      modules.map(m -> m.resolve("target/test-classes")).filter(Files::isDirectory)
          .filter(d -> !d.startsWith(root.resolve("architecture"))).forEach(dirs::add);
    }
    JavaClasses classes = new ClassFileImporter().importPaths(dirs);
    Set<String> untagged = new TreeSet<>();
    int testClasses = 0;
    for (JavaClass c : classes) {
      if (c.getModifiers().contains(com.tngtech.archunit.core.domain.JavaModifier.ABSTRACT)
          || c.getMethods().stream().noneMatch(m -> m.getAnnotations().stream()
              .anyMatch(a -> TEST_ANNOTATIONS.contains(a.getRawType().getName())))) {
        continue;
      }
      testClasses++;
      List<String> tiers = tiersOf(c);
      if (tiers.size() != 1) {
        untagged.add(c.getName() + " " + tiers);
      }
    }
    assertTrue(testClasses >= 60, "found only " + testClasses + " test classes under " + dirs
        + "; run this from a reactor build that compiles every module's tests (mvn verify)");
    assertTrue(untagged.isEmpty(), "test classes without exactly one of the tier tags " + TIERS
        + " (@Tag on the class or an enclosing class): " + untagged);
  }

  /** The tier tags on the class or, for a nested class, on the classes enclosing it. */
  private static List<String> tiersOf(JavaClass c) {
    List<String> found = new ArrayList<>();
    for (Optional<JavaClass> k = Optional.of(c); k.isPresent(); k = k.get().getEnclosingClass()) {
      // Two or more @Tag on one class are compiled into their container, @Tags.
      k.get().tryGetAnnotationOfType(Tag.class).map(Tag::value).filter(TIERS::contains).ifPresent(found::add);
      k.get().tryGetAnnotationOfType(Tags.class).ifPresent(tags -> Arrays.stream(tags.value()).map(Tag::value)
          .filter(TIERS::contains).forEach(found::add));
    }
    return found;
  }
}
