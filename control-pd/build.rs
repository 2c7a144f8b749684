fn main() {
    axolotl_user_layout::link();
}
