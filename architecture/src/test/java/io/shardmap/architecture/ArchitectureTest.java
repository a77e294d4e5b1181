package io.shardmap.architecture;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.EvaluationResult;
import io.shardmap.client.plant.PlantedReach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The rules of {@link Architecture} over every module's main classes, and a check that they can fail. */
@Tag("unit")
class ArchitectureTest {
  private static JavaClasses main;

  @BeforeAll
  static void importMainClasses() {
    // Only main classes: tests may use internals of their own module and fixtures of any layer.
    main = new ClassFileImporter()
        .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
        .importPackages("io.shardmap");
    assertTrue(main.size() > 200, "imported only " + main.size() + " classes; the module jars are missing");
  }

  @Test
  void noModuleReachesIntoAnotherModulesInternalPackage() {
    Architecture.INTERNAL_STAYS_INTERNAL.check(main);
  }

  @Test
  void importsGoDownTheLayersOnly() {
    Architecture.LAYERS.check(main);
  }

  /**
   * The rules are not vacuous: a class in the client SDK's packages that imports the server's internals
   * (a test class made for this, never among the main classes checked above) breaks both.
   */
  @Test
  void aPlantedReachIntoAnotherModulesInternalsBreaksBothRules() {
    JavaClasses planted = new ClassFileImporter().importClasses(PlantedReach.class,
        io.shardmap.server.internal.Errors.class);
    EvaluationResult internal = Architecture.INTERNAL_STAYS_INTERNAL.evaluate(planted);
    assertTrue(internal.hasViolation(), "the internal rule missed the plant");
    assertTrue(internal.getFailureReport().toString().contains(PlantedReach.class.getName()),
        internal.getFailureReport().toString());
    EvaluationResult layers = Architecture.LAYERS.withOptionalLayers(true).evaluate(planted);
    assertTrue(layers.hasViolation(), "the layer rule missed the plant");
    assertTrue(layers.getFailureReport().toString().contains(PlantedReach.class.getName()),
        layers.getFailureReport().toString());
  }
}
