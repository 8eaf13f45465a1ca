// A state machine without the required members must fail with one plain line naming the
// concept and the header that documents it.
// expect: the StateMachine does not model craft::state_machine; see craft/concepts.hpp

#include <craft/testing/cluster.hpp>

struct not_a_state_machine {
    void apply(int) {}
};

int main() {
    craft::testing::cluster<not_a_state_machine> c({});
    return static_cast<int>(c.ids().size());
}
