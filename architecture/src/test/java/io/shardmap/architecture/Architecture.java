package io.shardmap.architecture;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.library.Architectures.layeredArchitecture;

import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.Dependency;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.lang.ArchCondition;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.ConditionEvents;
import com.tngtech.archunit.lang.SimpleConditionEvent;
import com.tngtech.archunit.library.Architectures.LayeredArchitecture;

/**
 * The project's architecture as two rules over main classes.
 *
 * <p><b>Internal stays internal.</b> A package {@code io.shardmap.X.internal} (and below) is reachable only
 * from {@code io.shardmap.X} and below: the public API of a module is what it keeps outside {@code
 * internal}, and nothing else may grow a dependency on the rest. The benchmarks ({@code io.shardmap.bench})
 * are the one exception: they measure internals on purpose (a fence's cost, a table move's copy rate),
 * ship no API and nothing depends on them.
 *
 * <p><b>Layers.</b> Imports go one way: proto, core, store, catalog, then the components (directory server,
 * client SDK, migrator), then what is built from them (CLIs, examples); {@code cli-support} (the CLIs'
 * shared exit codes, duration grammar and tables) sits beside them and uses no Shardmap layer. Each layer lists what it may use;
 * everything else is refused. The client SDK sits on core alone: an application never pulls in etcd, the
 * catalog or a server.
 */
final class Architecture {
  private Architecture() {}

  static final String BENCH = "io.shardmap.bench..";
  static final String FLEET = "io.shardmap.testkit.fleet..";

  static final ArchRule INTERNAL_STAYS_INTERNAL = classes()
      .that().resideInAPackage("io.shardmap..internal..")
      .should(new ArchCondition<JavaClass>("be used only from their own module's packages") {
        @Override
        public void check(JavaClass target, ConditionEvents events) {
          String pkg = target.getPackageName();
          String owner = pkg.substring(0, pkg.indexOf(".internal"));
          for (Dependency d : target.getDirectDependenciesToSelf()) {
            JavaClass origin = d.getOriginClass();
            String from = origin.getPackageName();
            boolean own = from.equals(owner) || from.startsWith(owner + ".");
            if (!own && !from.startsWith("io.shardmap.bench")) {
              events.add(SimpleConditionEvent.violated(d, origin.getName() + " reaches into " + owner
                  + "'s internal package: " + d.getDescription()));
            }
          }
        }
      })
      .allowEmptyShould(false)
      .because("a module's internal package is its implementation; other modules use its public API");

  static final LayeredArchitecture LAYERS = layeredArchitecture()
      .consideringOnlyDependenciesInLayers()
      .layer("proto").definedBy("io.shardmap.proto..")
      .layer("core").definedBy("io.shardmap.core..")
      .layer("store").definedBy("io.shardmap.store..")
      .layer("catalog").definedBy("io.shardmap.catalog..")
      .layer("query").definedBy("io.shardmap.query..")
      // testkit-fleet is a package below testkit's but a layer above the server (it starts directory servers).
      .layer("testkit").definedBy(JavaClass.Predicates.resideInAPackage("io.shardmap.testkit..")
          .and(DescribedPredicate.not(JavaClass.Predicates.resideInAPackage(FLEET))))
      .layer("testkit-fleet").definedBy(FLEET)
      .layer("server").definedBy("io.shardmap.server..")
      .layer("client").definedBy("io.shardmap.client..")
      .layer("migrator").definedBy("io.shardmap.migrator..")
      .layer("cli-support").definedBy("io.shardmap.support.cli..")
      .layer("cli").definedBy("io.shardmap.cli..")
      .layer("examples").definedBy("io.shardmap.examples..")
      .layer("bench").definedBy(BENCH)
      .whereLayer("proto").mayNotAccessAnyLayer()
      .whereLayer("core").mayOnlyAccessLayers("proto")
      .whereLayer("store").mayOnlyAccessLayers("core")
      .whereLayer("catalog").mayOnlyAccessLayers("proto", "core", "store")
      .whereLayer("query").mayOnlyAccessLayers("core")
      .whereLayer("testkit").mayOnlyAccessLayers("store", "core", "proto")
      .whereLayer("testkit-fleet").mayOnlyAccessLayers("testkit", "server", "store", "core", "proto")
      .whereLayer("server").mayOnlyAccessLayers("proto", "core", "store", "catalog", "cli-support")
      .whereLayer("client").mayOnlyAccessLayers("proto", "core", "query")
      .whereLayer("migrator").mayOnlyAccessLayers("proto", "core", "store", "catalog", "cli-support")
      .whereLayer("cli-support").mayNotAccessAnyLayer()
      .whereLayer("cli").mayOnlyAccessLayers("proto", "core", "client", "cli-support")
      .whereLayer("examples").mayOnlyAccessLayers("client", "core", "proto", "cli-support")
      .whereLayer("bench").mayOnlyAccessLayers("proto", "core", "store", "catalog", "testkit", "testkit-fleet", "server",
          "client", "migrator", "cli-support");
}
