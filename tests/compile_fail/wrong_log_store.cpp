// A policy bundle whose log_store is not a log store must fail with one plain line naming the
// slot and the header that documents it.
// expect: Policies::log_store does not model craft::log_store; see craft/concepts.hpp

#include <craft/testing/cluster.hpp>

struct not_a_log_store {
    int size() const { return 0; }
};

struct wrong_policies {
    using log_store = not_a_log_store;
    using snapshot_store = craft::testing::memory_snapshot_store;
};

int main() {
    craft::testing::cluster<craft::testing::recording_state_machine, wrong_policies> c({});
    return static_cast<int>(c.ids().size());
}
